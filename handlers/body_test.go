package handlers

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// endless yields bytes as fast as they are read.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestAFastUploadGivesItsTurnToAWaitingOne(t *testing.T) {
	t.Parallel()
	tr := newTurns(1)
	b := &body{src: io.NopCloser(endless{})}
	b.pace(t.Context(), tr, "alice")
	defer b.unpace()
	buf := make([]byte, 4096)
	_, err := b.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 1, tr.held(), "alice reads under the turn")

	granted := make(chan error, 1)
	go func() { granted <- tr.acquire(t.Context(), "bob") }()
	require.Eventually(t, func() bool { return tr.waiting() == 1 }, 5*time.Second, time.Millisecond)
	// Alice keeps reading as fast as she can; after a slice she gives the turn to Bob.
	stop := make(chan struct{})
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-granted:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("alice kept the turn while bob waited")
	}
	close(stop)
	tr.release() // bob's: alice's pending read takes it and returns
	<-reading
}

func TestAStalledReadGivesItsTurnToAWaitingOne(t *testing.T) {
	t.Parallel()
	tr := newTurns(1)
	pr, pw := io.Pipe()
	b := &body{src: pr}
	b.pace(t.Context(), tr, "alice")
	go func() { _, _ = pw.Write([]byte("first")) }()
	buf := make([]byte, 64)
	n, err := b.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "first", string(buf[:n]))
	require.Equal(t, 1, tr.held())

	// Alice's next read waits for her client; Bob waits for a turn and gets it meanwhile.
	read := make(chan string, 1)
	go func() {
		n, _ := b.Read(buf)
		read <- string(buf[:n])
	}()
	require.NoError(t, tr.acquire(t.Context(), "bob"))
	require.Equal(t, 1, tr.held(), "bob has the turn, alice none")

	// Alice's data arrives: she waits for Bob to give the turn back before it is handed on.
	go func() { _, _ = pw.Write([]byte("second")) }()
	select {
	case s := <-read:
		t.Fatalf("alice's read returned %q without a turn", s)
	case <-time.After(100 * time.Millisecond): // a window for a wrong answer to show
	}
	tr.release()
	require.Equal(t, "second", <-read)
	require.Equal(t, 1, tr.held(), "alice has it again")
	b.unpace()
	require.Zero(t, tr.held())
	require.NoError(t, pw.Close())
}
