package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// MaxURLBytes bounds an endpoint URL.
const MaxURLBytes = 2048

// URLError says why an endpoint URL is refused, in words meant for the owner.
type URLError struct{ Reason string }

func (e *URLError) Error() string { return e.Reason }

// errPrivate is returned by the dialer for an address that is not public.
var errPrivate = errors.New("the address is not public")

// nonPublic lists the special-purpose ranges beyond what netip classifies itself.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use IPv4/IPv6 translation
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}

// nat64 and sixToFour embed an IPv4 address, which decides.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// IsPublic reports whether ip is an ordinary Internet address: not loopback, private, link-local
// (cloud metadata services live there), multicast, unspecified or otherwise special.
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	if ip.Is6() {
		b := ip.As16()
		if nat64.Contains(ip) {
			return IsPublic(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
		if sixToFour.Contains(ip) {
			return IsPublic(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return true
}

// Resolver looks host names up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// HostAllowed reports whether host may be sent to: any host when hosts is empty, else only those
// named (compared without case).
func HostAllowed(host string, hosts []string) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if strings.EqualFold(strings.Trim(h, "[]"), host) {
			return true
		}
	}
	return false
}

// CheckURL validates an endpoint URL: absolute http or https, a host, no credentials, a host
// among hosts when that list is not empty, and, unless allowPrivate, a host whose every address is
// public. Addresses are checked again on every delivery, when they are dialled, so a name that
// later resolves elsewhere gains nothing.
func CheckURL(ctx context.Context, raw string, allowPrivate bool, hosts []string, r Resolver) error {
	if len(raw) > MaxURLBytes {
		return &URLError{fmt.Sprintf("the URL is longer than %d bytes", MaxURLBytes)}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return &URLError{"it is not an absolute URL such as https://example.com/webhooks"}
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return &URLError{fmt.Sprintf("the scheme must be https or http, not %q", u.Scheme)}
	}
	if u.User != nil {
		return &URLError{"the URL must not carry a user name or password"}
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return &URLError{"the URL must not carry a fragment"}
	}
	host := u.Hostname()
	shown := host // as messages quote it
	if len(shown) > 128 {
		shown = strings.ToValidUTF8(shown[:128], "") + "…"
	}
	if host == "" {
		return &URLError{"the URL has no host"}
	}
	if !HostAllowed(host, hosts) {
		return &URLError{fmt.Sprintf("the host %q is not one this server sends webhooks to (VOLLEY_WEBHOOK_ALLOW_HOSTS)", shown)}
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !IsPublic(ip) {
			return &URLError{fmt.Sprintf("%s is a private, loopback or otherwise non-public address; Volley only sends webhooks to public addresses unless its operator sets VOLLEY_WEBHOOK_ALLOW_PRIVATE", ip)}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return &URLError{fmt.Sprintf("the host %q could not be resolved", shown)}
	}
	for _, ip := range addrs {
		if !IsPublic(ip) {
			return &URLError{fmt.Sprintf("the host %q resolves to %s, a private, loopback or otherwise non-public address; Volley only sends webhooks to public addresses unless its operator sets VOLLEY_WEBHOOK_ALLOW_PRIVATE", shown, ip.Unmap())}
		}
	}
	return nil
}

// publicOnly is a net.Dialer Control function that refuses to connect to a non-public address.
// It runs after name resolution, on the address actually dialled.
func publicOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if !IsPublic(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", ap.Addr().Unmap(), errPrivate)
	}
	return nil
}
