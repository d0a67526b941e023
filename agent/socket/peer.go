package socket

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a connection, as the kernel
// reported it when it connected (SO_PEERCRED).
type Peer struct {
	PID int32
	UID uint32
	GID uint32 // effective gid
	// Groups are the supplementary groups read from /proc/PID/status, when
	// the allow-list needed them and they could be read.
	Groups []uint32
}

func (p Peer) String() string { return fmt.Sprintf("pid %d uid %d gid %d", p.PID, p.UID, p.GID) }

// peerCred reads the peer's credentials from a Unix connection.
func peerCred(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var (
		cred *unix.Ucred
		gerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if gerr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", gerr)
	}
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// allowList decides which peers may talk to the server.
type allowList struct {
	uids, gids []uint32
}

func newAllowList(cfg ServerConfig) allowList {
	if len(cfg.AllowUIDs) == 0 && len(cfg.AllowGIDs) == 0 {
		return allowList{uids: []uint32{0, uint32(os.Getuid())}}
	}
	return allowList{uids: slices.Clone(cfg.AllowUIDs), gids: slices.Clone(cfg.AllowGIDs)}
}

// allows reports whether p may connect, reading p's supplementary groups
// when its uid and effective gid are not enough.
func (a allowList) allows(p *Peer) bool {
	if slices.Contains(a.uids, p.UID) || slices.Contains(a.gids, p.GID) {
		return true
	}
	if len(a.gids) == 0 {
		return false
	}
	p.Groups = supplementaryGroups(p.PID)
	for _, g := range p.Groups {
		if slices.Contains(a.gids, g) {
			return true
		}
	}
	return false
}

// procStatus is where supplementary groups are read from; tests may point
// it elsewhere.
var procStatus = func(pid int32) string { return "/proc/" + strconv.Itoa(int(pid)) + "/status" }

// supplementaryGroups reads the "Groups:" line of /proc/PID/status; nil when
// it cannot.
func supplementaryGroups(pid int32) []uint32 {
	b, err := os.ReadFile(procStatus(pid))
	if err != nil {
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Groups:"))
		if !ok {
			continue
		}
		var gs []uint32
		for _, f := range bytes.Fields(rest) {
			if g, err := strconv.ParseUint(string(f), 10, 32); err == nil {
				gs = append(gs, uint32(g))
			}
		}
		return gs
	}
	return nil
}
