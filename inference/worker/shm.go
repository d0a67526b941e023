package worker

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Region is a memfd and, once sized, its shared mapping.
type Region struct {
	f   *os.File
	mem []byte
}

// NewRegion creates an empty memfd that can be sealed; name shows in
// /proc/<pid>/maps as /memfd:<name>.
func NewRegion(name string) (*Region, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create %s: %w", name, err)
	}
	return &Region{f: os.NewFile(uintptr(fd), "memfd:"+name)}, nil
}

// OpenRegion takes the memfd at descriptor fd (the worker's side).
func OpenRegion(fd int, name string) *Region {
	return &Region{f: os.NewFile(uintptr(fd), "memfd:"+name)}
}

// File is the memfd, for passing to a child.
func (r *Region) File() *os.File { return r.f }

// Size sets the memfd's size (the worker's side, before the parent seals
// it) and maps it.
func (r *Region) Size(n int) ([]byte, error) {
	if err := unix.Ftruncate(int(r.f.Fd()), int64(n)); err != nil {
		return nil, fmt.Errorf("size %s to %d bytes: %w", r.f.Name(), n, err)
	}
	return r.Map(n)
}

// Seal fixes the memfd's size at want bytes, which it must have: after
// this neither side can shrink it (and so make the other's mapping fault)
// or grow it.
func (r *Region) Seal(want int) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", r.f.Name(), err)
	}
	if st.Size != int64(want) {
		return fmt.Errorf("%s holds %d bytes, the worker announced %d", r.f.Name(), st.Size, want)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(r.f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("seal %s: %w", r.f.Name(), err)
	}
	return nil
}

// Map maps the first n bytes of the memfd, shared.
func (r *Region) Map(n int) ([]byte, error) {
	if r.mem != nil {
		return r.mem, nil
	}
	if n <= 0 {
		return nil, fmt.Errorf("map %s: size %d", r.f.Name(), n)
	}
	mem, err := unix.Mmap(int(r.f.Fd()), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s (%d bytes): %w", r.f.Name(), n, err)
	}
	r.mem = mem
	return mem, nil
}

// Bytes is the mapping (nil before Map or Size).
func (r *Region) Bytes() []byte { return r.mem }

// CloseFile closes the memfd; a mapping stays valid until Close.
func (r *Region) CloseFile() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Close unmaps the region and closes the memfd. Nothing may use the
// mapping any more.
func (r *Region) Close() error {
	var err error
	if r.mem != nil {
		err = unix.Munmap(r.mem)
		r.mem = nil
	}
	if cerr := r.CloseFile(); err == nil {
		err = cerr
	}
	return err
}
