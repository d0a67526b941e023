package worker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one end of a SOCK_SEQPACKET socketpair: every Send is one
// message and every Recv returns one. Recv waits with Go's poller, so it
// takes a deadline and parks only the calling goroutine; when the other
// end's process dies, Recv returns io.EOF.
type Conn struct{ f *os.File }

// Pair makes a socketpair: the parent's end as a Conn, the child's as a
// file to pass at spawn (close it in the parent once the child started).
func Pair(name string) (*Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair %s: %w", name, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair %s: %w", name, err)
	}
	return &Conn{f: os.NewFile(uintptr(fds[0]), name)}, os.NewFile(uintptr(fds[1]), name+"-child"), nil
}

// OpenConn takes the socket at descriptor fd (the worker's side).
func OpenConn(fd int, name string) (*Conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("socket %s (fd %d): %w", name, fd, err)
	}
	return &Conn{f: os.NewFile(uintptr(fd), name)}, nil
}

// Send writes one message.
func (c *Conn) Send(b []byte) error {
	n, err := c.f.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// Recv reads one message into b, waiting until deadline (none when zero):
// os.ErrDeadlineExceeded then, io.EOF when the other end is closed. A
// message longer than b is cut.
func (c *Conn) Recv(b []byte, deadline time.Time) (int, error) {
	if err := c.f.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := c.f.Read(b)
	if err == nil && n == 0 {
		err = io.EOF
	}
	return n, err
}

// Close closes the socket; a Recv waiting on it returns.
func (c *Conn) Close() error { return c.f.Close() }

// Timeout reports whether err is a Recv that met its deadline.
func Timeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
