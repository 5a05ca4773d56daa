package webhook

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsPublic(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34", "64:ff9b::808:808"} {
		require.True(t, IsPublic(netip.MustParseAddr(a)), a)
	}
	for _, a := range []string{
		"127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fc00::1", "fd12:3456::1", "0.0.0.0", "::", "100.64.0.1",
		"224.0.0.1", "ff02::1", "255.255.255.255", "198.18.0.1", "192.0.2.1", "::ffff:127.0.0.1",
		"::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "2001:db8::1",
	} {
		require.False(t, IsPublic(netip.MustParseAddr(a)), a)
	}
}

// fakeResolver answers with fixed addresses, as a DNS server that points a name anywhere would.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &URLError{"no such host"}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	r := fakeResolver{
		"hooks.example.com": {netip.MustParseAddr("93.184.216.34")},
		"sneaky.example":    {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.7")},
		"metadata.example":  {netip.MustParseAddr("169.254.169.254")},
	}
	ok := []string{"https://hooks.example.com/volley", "http://hooks.example.com:8443/a?b=c", "https://93.184.216.34/x"}
	for _, u := range ok {
		require.NoError(t, CheckURL(t.Context(), u, false, nil, r), u)
	}
	bad := map[string]string{
		"":                                "not an absolute URL",
		"hooks.example.com/x":             "not an absolute URL",
		"ftp://hooks.example.com/":        "scheme must be https or http",
		"mailto:a@b.c":                    "not an absolute URL",
		"https://u:p@hooks.example.com/":  "user name or password",
		"https:///path":                   "no host",
		"https://hooks.example.com/#frag": "fragment",
		"http://127.0.0.1:9000/hook":      "127.0.0.1 is a private",
		"http://[::1]/hook":               "::1 is a private",
		"http://10.0.0.1/hook":            "10.0.0.1 is a private",
		"http://169.254.169.254/latest":   "169.254.169.254 is a private",
		"http://sneaky.example/":          `"sneaky.example" resolves to 10.0.0.7`,
		"http://metadata.example/":        `resolves to 169.254.169.254`,
		"https://nowhere.example/":        "could not be resolved",
		"https://hooks.example.com/" + string(make([]byte, MaxURLBytes)): "longer than 2048 bytes",
	}
	for u, want := range bad {
		err := CheckURL(t.Context(), u, false, nil, r)
		require.Error(t, err, u)
		var ue *URLError
		require.ErrorAs(t, err, &ue)
		require.Contains(t, err.Error(), want, u)
	}
	// The operator may allow private addresses; the URL must still be well formed.
	require.NoError(t, CheckURL(t.Context(), "http://127.0.0.1:9000/hook", true, nil, r))
	require.NoError(t, CheckURL(t.Context(), "http://localhost:9000/hook", true, nil, r))
	require.Error(t, CheckURL(t.Context(), "ftp://127.0.0.1/", true, nil, r))

	// With an allow-list, only the hosts it names, before any name is resolved.
	hosts := []string{"hooks.internal", "[::1]"}
	err := CheckURL(t.Context(), "https://hooks.example.com/", false, hosts, r)
	require.ErrorContains(t, err, `the host "hooks.example.com" is not one this server sends webhooks to (VOLLEY_WEBHOOK_ALLOW_HOSTS)`)
	require.NoError(t, CheckURL(t.Context(), "http://HOOKS.internal:81/x", true, hosts, r))
	require.NoError(t, CheckURL(t.Context(), "http://[::1]/x", true, hosts, r))
}

func TestCheckURLResolvesLocalhostAsLoopback(t *testing.T) {
	t.Parallel()
	// The system resolver answers "localhost" from the hosts file, without the network.
	err := CheckURL(t.Context(), "http://localhost:8080/hook", false, nil, net.DefaultResolver)
	require.ErrorContains(t, err, "resolves to")
	require.ErrorContains(t, err, "VOLLEY_WEBHOOK_ALLOW_PRIVATE")
}
