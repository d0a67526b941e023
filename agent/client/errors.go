package client

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// ErrNotRunning is matched by Dial's error when no daemon listens on the
// path; ErrPermission when the socket's permissions keep this user out.
var (
	ErrNotRunning = errors.New("vigild is not running")
	ErrPermission = errors.New("permission denied")
)

// dialError turns a connect error into one that says what to do.
func dialError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w: no socket at %s", ErrNotRunning, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: %s refuses connections (the socket of a daemon that stopped)", ErrNotRunning, path)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w on %s: %s", ErrPermission, path, permissionHint(path))
	}
	return fmt.Errorf("connect to vigild at %s: %w", path, err)
}

// permissionHint says who may use the socket, from its owner and group.
func permissionHint(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "this user may not reach the socket's directory; ask the vehicle's administrator for access"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "ask the vehicle's administrator for access"
	}
	group := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("the socket is mode %#o and belongs to group %s: add your user to group %s (and log in again) or ask the vehicle's administrator to allow your uid %d",
		uint32(fi.Mode().Perm()), group, group, os.Getuid())
}
