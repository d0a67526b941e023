package socket

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// ErrAlreadyRunning is matched by the error Listen returns when another
// daemon serves the socket path.
var ErrAlreadyRunning = errors.New("another vigild is listening")

// lockSocket takes an exclusive lock on PATH.lock so that two daemons
// starting together cannot both decide the socket is stale.
func lockSocket(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("socket.path: lock %s.lock: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w on %s (it holds %s.lock)", ErrAlreadyRunning, path, path)
		}
		return nil, fmt.Errorf("socket.path: lock %s.lock: %w", path, err)
	}
	return f, nil
}

// clearStale removes a socket file left by a crashed daemon. It probes the
// socket by connecting: refused means nobody listens and the file can go;
// an answer means a live server, which is never stolen.
func clearStale(path string, log *zap.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket.path: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("socket.path: %s exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w on %s", ErrAlreadyRunning, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("socket.path: probe existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("socket.path: remove stale socket %s: %w", path, err)
	}
	log.Info("replaced a stale socket from an earlier run", zap.String("path", path))
	return nil
}

// listenSocket creates the socket with the configured mode, owner and
// group.
func listenSocket(cfg ServerConfig) (*net.UnixListener, error) {
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("socket.path: directory of %s: %w", cfg.Path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("socket.path: listen on %s: %w", cfg.Path, err)
	}
	ln.SetUnlinkOnClose(true)
	// Until the chmod the file has the umask's mode; connections made in
	// that window still meet the SO_PEERCRED allow-list.
	if err := os.Chmod(cfg.Path, os.FileMode(cfg.Mode)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket.mode %#o: chmod %s: %w", uint32(cfg.Mode), cfg.Path, err)
	}
	if err := chownSocket(cfg); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func chownSocket(cfg ServerConfig) error {
	uid, gid := -1, -1
	if cfg.Owner != "" {
		id, err := lookupID(cfg.Owner, func(s string) (string, error) {
			u, err := user.Lookup(s)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return fmt.Errorf("socket.owner %q: %w", cfg.Owner, err)
		}
		uid = id
	}
	if cfg.Group != "" {
		id, err := lookupID(cfg.Group, func(s string) (string, error) {
			g, err := user.LookupGroup(s)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return fmt.Errorf("socket.group %q: %w", cfg.Group, err)
		}
		gid = id
	}
	if uid == -1 && gid == -1 {
		return nil
	}
	if err := os.Chown(cfg.Path, uid, gid); err != nil {
		field, value := "socket.group", cfg.Group
		if uid != -1 && uid != os.Getuid() {
			field, value = "socket.owner", cfg.Owner
		}
		return fmt.Errorf("%s %q: chown %s: %w (vigild runs as uid %d: giving the socket another owner needs root, another group needs root or membership of it)",
			field, value, cfg.Path, err, os.Getuid())
	}
	return nil
}

// lookupID reads a numeric id or resolves a name.
func lookupID(s string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return int(n), nil
	}
	id, err := lookup(s)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("id %q: %w", id, err)
	}
	return int(n), nil
}
