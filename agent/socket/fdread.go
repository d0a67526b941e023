package socket

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdReader reads a connection's bytes with recvmsg, so that file
// descriptors sent with SCM_RIGHTS are received (a plain read would let
// the kernel drop them), and remembers for each one where in the byte
// stream it came: the count of bytes read when the read that brought it
// returned. Linux ends a read right after the data of a sendmsg that
// carried descriptors, so descriptors sent with a frame in one sendmsg
// arrive with a count inside that frame (after its first byte, at most
// its end). The reader's owner (the connection's reader role) takes them
// with take and closes the rest.
type fdReader struct {
	rc    syscall.RawConn
	total uint64   // bytes read so far
	fds   []recvFD // received, not yet taken or closed
	oob   []byte

	// The current read's arguments and results, so that the function
	// handed to RawConn.Read is made once.
	p      []byte
	n      int
	err    error
	readFn func(fd uintptr) bool
}

// recvFD is a received descriptor and the stream count it came with.
type recvFD struct {
	fd int
	at uint64
}

// maxFDsPerRead bounds the descriptors one recvmsg takes; the kernel
// closes those beyond (MSG_CTRUNC). maxQueuedFDs bounds those waiting for
// a frame: a client that sends descriptors with other frames only loses
// them.
const (
	maxFDsPerRead = 4
	maxQueuedFDs  = 8
)

func newFDReader(nc *net.UnixConn) (*fdReader, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &fdReader{rc: rc, oob: make([]byte, unix.CmsgSpace(4*maxFDsPerRead))}
	r.readFn = r.recv
	return r, nil
}

func (r *fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.err = p, 0, nil
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, err
	}
	r.p = nil
	if r.err != nil {
		return 0, r.err
	}
	if r.n == 0 {
		return 0, io.EOF
	}
	return r.n, nil
}

// recv is one recvmsg; false asks RawConn.Read to wait for data.
func (r *fdReader) recv(fd uintptr) bool {
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(fd), r.p, r.oob, unix.MSG_CMSG_CLOEXEC)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case nil:
		default:
			r.err = err
			return true
		}
		r.n = n
		r.total += uint64(n)
		if oobn > 0 {
			r.keep(r.oob[:oobn])
		}
		return true
	}
}

// keep queues the descriptors of a control message, closing what cannot
// be queued.
func (r *fdReader) keep(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if len(r.fds) >= maxQueuedFDs {
				unix.Close(fd)
				continue
			}
			r.fds = append(r.fds, recvFD{fd: fd, at: r.total})
		}
	}
}

// take returns the descriptors that came with the frame occupying stream
// bytes [start, end) and closes every older one.
func (r *fdReader) take(start, end uint64, dst []int) []int {
	kept := r.fds[:0]
	for _, f := range r.fds {
		switch {
		case f.at <= start:
			unix.Close(f.fd)
		case f.at <= end:
			dst = append(dst, f.fd)
		default:
			kept = append(kept, f)
		}
	}
	clear(r.fds[len(kept):])
	r.fds = kept
	return dst
}

// closeAll closes every descriptor still queued.
func (r *fdReader) closeAll() {
	for _, f := range r.fds {
		unix.Close(f.fd)
	}
	r.fds = r.fds[:0]
}
