package blob

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Verification is the outcome of the last check of one checkpoint
// (`vigil-fleet checkpoint verify`): when, how deep, and what failed.
type Verification struct {
	At       time.Time `json:"at"`
	ReadData bool      `json:"read_data"` // every chunk read back and hashed, not only the chain rules
	OK       bool      `json:"ok"`
	Problem  string    `json:"problem,omitempty"` // the first failure, when not OK
}

// RecordVerification keeps v as the last verification of checkpoint id,
// beside its manifest (<id>.verify), replacing the one before.
func (c *Catalog) RecordVerification(vehicle, store, id string, v Verification) error {
	if err := checkParts(vehicle, store, id); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("checkpoint %s: record verification: %w", id, err)
	}
	if err := writeAtomic(c.verifyPath(vehicle, store, id), b); err != nil {
		return fmt.Errorf("checkpoint %s: record verification: %w", id, err)
	}
	return nil
}

// LastVerification returns the last recorded verification of checkpoint
// id, and false when it was never verified.
func (c *Catalog) LastVerification(vehicle, store, id string) (Verification, bool, error) {
	if err := checkParts(vehicle, store, id); err != nil {
		return Verification{}, false, err
	}
	path := c.verifyPath(vehicle, store, id)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Verification{}, false, nil
	}
	if err != nil {
		return Verification{}, false, fmt.Errorf("checkpoint catalog: %w", err)
	}
	var v Verification
	if err := json.Unmarshal(b, &v); err != nil {
		return Verification{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return v, true, nil
}

func (c *Catalog) verifyPath(vehicle, store, id string) string {
	return filepath.Join(c.root, vehicle, store, id+".verify")
}
