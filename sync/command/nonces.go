package command

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	gosync "sync"
	"time"

	"github.com/vigil-av/vigil/storage/record"
)

// NonceStore remembers the nonces of accepted envelopes until they
// expire. Implementations prune expired nonces themselves.
type NonceStore interface {
	// Seen reports whether nonce was remembered and has not expired.
	Seen(nonce string) (bool, error)
	// Remember keeps nonce until expires; it is durable on return for a
	// persistent store.
	Remember(nonce string, expires time.Time) error
}

// MemoryNonces is a NonceStore that forgets on restart: for tests and for
// the cloud side.
type MemoryNonces struct {
	now func() time.Time
	mu  gosync.Mutex
	m   map[string]time.Time
}

// NewMemoryNonces returns an empty in-memory store pruned against now.
func NewMemoryNonces(now func() time.Time) *MemoryNonces {
	return &MemoryNonces{now: now, m: map[string]time.Time{}}
}

func (s *MemoryNonces) Seen(nonce string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.m[nonce]
	return ok && !s.now().After(exp), nil
}

func (s *MemoryNonces) Remember(nonce string, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prune(s.m, s.now())
	s.m[nonce] = expires
	return nil
}

// Len is how many nonces are kept.
func (s *MemoryNonces) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func prune(m map[string]time.Time, now time.Time) {
	for n, exp := range m {
		if now.After(exp) {
			delete(m, n)
		}
	}
}

// StateKV is the part of *storage.Store a StateNonces uses. GetState
// returns an error wrapping record.ErrNoState for a key without value.
type StateKV interface {
	PutState(key string, value []byte) error
	GetState(key string) ([]byte, error)
	DeleteState(key string) error
}

// StateNonceKey is the state key the nonce cache lives under.
const StateNonceKey = "sync.command.nonces"

// entryLen: a 16-byte nonce and its expiry in Unix milliseconds.
const entryLen = nonceBytes + 8

// MaxStateNonces is how many unexpired nonces a StateNonces holds: the
// cache is one state value, and storage bounds those to 64 KiB. With the
// default lifetime of an hour that is 45 commands a minute, sustained.
const MaxStateNonces = (64<<10 - 1) / entryLen

// ErrNonceCacheFull is returned by StateNonces.Remember when the cache
// holds MaxStateNonces unexpired nonces; the command is then refused
// (fail closed).
var ErrNonceCacheFull = errors.New("command: nonce cache full")

// StateNonces is a NonceStore kept in the storage state KV, so that a
// replay is refused after a restart. The whole cache is one value,
// rewritten (and synced) by every Remember, pruned of expired nonces as
// it is. Value layout: version byte 1, then entries of 16 nonce bytes
// and a big-endian int64 expiry in Unix milliseconds.
type StateNonces struct {
	kv  StateKV
	now func() time.Time
	mu  gosync.Mutex
	m   map[string]time.Time
}

// NewStateNonces loads the cache from kv. A value that does not parse is
// an error: starting with an empty cache would let old commands replay.
func NewStateNonces(kv StateKV, now func() time.Time) (*StateNonces, error) {
	s := &StateNonces{kv: kv, now: now, m: map[string]time.Time{}}
	v, err := kv.GetState(StateNonceKey)
	if errors.Is(err, record.ErrNoState) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("command: load nonce cache: %w", err)
	}
	if len(v) < 1 || v[0] != 1 || (len(v)-1)%entryLen != 0 {
		return nil, fmt.Errorf("command: load nonce cache: %d bytes, version %d: corrupt; delete state key %q to start afresh", len(v), firstByte(v), StateNonceKey)
	}
	for p := 1; p < len(v); p += entryLen {
		s.m[hex.EncodeToString(v[p:p+nonceBytes])] = time.UnixMilli(int64(binary.BigEndian.Uint64(v[p+nonceBytes:])))
	}
	return s, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func (s *StateNonces) Seen(nonce string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.m[nonce]
	return ok && !s.now().After(exp), nil
}

func (s *StateNonces) Remember(nonce string, expires time.Time) error {
	raw, err := hex.DecodeString(nonce)
	if err != nil || len(raw) != nonceBytes {
		return fmt.Errorf("command: remember nonce %q: not %d bytes of hex", nonce, nonceBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]time.Time, len(s.m)+1)
	for n, e := range s.m {
		next[n] = e
	}
	prune(next, s.now())
	next[nonce] = expires
	if len(next) > MaxStateNonces {
		return fmt.Errorf("%w: %d unexpired nonces", ErrNonceCacheFull, len(next)-1)
	}
	v := make([]byte, 1, 1+len(next)*entryLen)
	v[0] = 1
	for n, e := range next {
		b, _ := hex.DecodeString(n)
		v = append(v, b...)
		v = binary.BigEndian.AppendUint64(v, uint64(e.UnixMilli()))
	}
	if len(next) == 0 {
		if err := s.kv.DeleteState(StateNonceKey); err != nil {
			return fmt.Errorf("command: save nonce cache: %w", err)
		}
	} else if err := s.kv.PutState(StateNonceKey, v); err != nil {
		return fmt.Errorf("command: save nonce cache: %w", err)
	}
	s.m = next
	return nil
}

// Len is how many nonces are kept.
func (s *StateNonces) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
