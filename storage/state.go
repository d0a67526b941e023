package storage

import (
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/storage/record"
)

// ErrNoState is returned by GetState for a key that has no value (the
// same value as record.ErrNoState).
var ErrNoState = record.ErrNoState

// maxStateValue bounds a state value, well inside one Badger transaction.
const maxStateValue = 64 << 10

// PutState stores a small value under key (for example a nonce cache or a
// checkpoint marker) and makes it durable before returning. State is not
// telemetry: it is never evicted and never synced.
func (s *Store) PutState(key string, value []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if len(value) > maxStateValue {
		return fmt.Errorf("storage state %q: value of %d bytes, the limit is %d", key, len(value), maxStateValue)
	}
	return s.updateState(key, func(txn *badger.Txn, k []byte) error { return txn.Set(k, value) })
}

// DeleteState removes key; deleting a missing key is not an error.
func (s *Store) DeleteState(key string) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	return s.updateState(key, func(txn *badger.Txn, k []byte) error { return txn.Delete(k) })
}

func (s *Store) updateState(key string, f func(*badger.Txn, []byte) error) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	k := append(append([]byte(nil), prefixState...), key...)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.db.Update(func(txn *badger.Txn) error { return f(txn, k) })
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("storage state %q: %w", key, err)
	}
	return nil
}

// GetState returns a copy of the value stored under key, or ErrNoState.
func (s *Store) GetState(key string) ([]byte, error) {
	if err := checkStateKey(key); err != nil {
		return nil, err
	}
	select {
	case <-s.closed:
		return nil, ErrClosed
	default:
	}
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(append(append([]byte(nil), prefixState...), key...))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrNoState, key)
	}
	if err != nil {
		return nil, fmt.Errorf("storage state %q: %w", key, err)
	}
	return v, nil
}

func checkStateKey(key string) error {
	if key == "" || len(key) > 256 {
		return fmt.Errorf("storage state key %q: must be 1 to 256 bytes", key)
	}
	return nil
}
