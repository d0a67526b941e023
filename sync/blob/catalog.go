package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// ErrConflict is wrapped by Complete for a manifest whose checkpoint the
// catalog already holds with other contents.
var ErrConflict = errors.New("checkpoint already complete with another manifest")

// Catalog records the complete checkpoints: the manifest of checkpoint id
// of store s of vehicle v is <root>/checkpoints/<v>/<s>/<id>.json, the
// bytes exactly as the vehicle sent them; its last verification, when it
// had one, is <id>.verify beside it.
type Catalog struct {
	root string // <root>/checkpoints
}

// NewCatalog opens (creating it if missing) the catalog under root.
func NewCatalog(root string) (*Catalog, error) {
	if root == "" {
		return nil, errors.New("checkpoint catalog: no directory given")
	}
	dir := filepath.Join(root, "checkpoints")
	if err := mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("checkpoint catalog %s: %w", root, err)
	}
	return &Catalog{root: dir}, nil
}

// Complete parses and checks raw (manifest.Parse, and a vehicle name safe
// as a directory), then records it atomically. Completing a checkpoint
// again with the same bytes does nothing; with other bytes it is refused
// (ErrConflict) and the recorded manifest stays.
func (c *Catalog) Complete(raw []byte) (*manifest.Manifest, error) {
	m, err := manifest.Parse(raw, "(uploaded)")
	if err != nil {
		return nil, err
	}
	if err := checkParts(m.Vehicle, m.StoreID, m.ID); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", m.ID, err)
	}
	path := c.path(m.Vehicle, m.StoreID, m.ID)
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, raw):
		return m, nil
	case err == nil:
		return nil, fmt.Errorf("checkpoint %s of vehicle %s store %s: %w (%s)", m.ID, m.Vehicle, m.StoreID, ErrConflict, path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("checkpoint %s: %w", m.ID, err)
	}
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", m.ID, err)
	}
	if err := writeAtomic(path, raw); err != nil {
		return nil, fmt.Errorf("checkpoint %s: record %s: %w", m.ID, path, err)
	}
	return m, nil
}

// Has says whether checkpoint id of the vehicle's store is complete.
func (c *Catalog) Has(vehicle, store, id string) (bool, error) {
	if err := checkParts(vehicle, store, id); err != nil {
		return false, err
	}
	_, err := os.Stat(c.path(vehicle, store, id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("checkpoint %s: %w", id, err)
}

// Raw returns the manifest of checkpoint id as the vehicle sent it;
// ErrNotFound, wrapped, when the checkpoint is not complete.
func (c *Catalog) Raw(vehicle, store, id string) ([]byte, error) {
	if err := checkParts(vehicle, store, id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(c.path(vehicle, store, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint %s of vehicle %s store %s: %w", id, vehicle, store, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	return b, nil
}

// Manifests returns the complete checkpoints of every store of vehicle,
// oldest first (manifest.Sort); none for a vehicle the catalog lacks. A
// manifest that does not parse, or names another vehicle, store or id
// than its file, is an error naming the file.
func (c *Catalog) Manifests(vehicle string) ([]*manifest.Manifest, error) {
	if !ValidVehicle(vehicle) {
		return nil, fmt.Errorf("vehicle %q: not a vehicle name", vehicle)
	}
	vdir := filepath.Join(c.root, vehicle)
	stores, err := readDirs(vdir)
	if err != nil {
		return nil, err
	}
	var ms []*manifest.Manifest
	for _, s := range stores {
		ents, err := os.ReadDir(filepath.Join(vdir, s))
		if err != nil {
			return nil, fmt.Errorf("checkpoint catalog: %w", err)
		}
		for _, e := range ents {
			id, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok || !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			m, err := c.read(vehicle, s, id)
			if err != nil {
				return nil, err
			}
			ms = append(ms, m)
		}
	}
	manifest.Sort(ms)
	return ms, nil
}

func (c *Catalog) read(vehicle, store, id string) (*manifest.Manifest, error) {
	path := c.path(vehicle, store, id)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint catalog: %w", err)
	}
	m, err := manifest.Parse(b, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Vehicle != vehicle || m.StoreID != store || m.ID != id {
		return nil, fmt.Errorf("%s: the manifest is checkpoint %s of vehicle %q store %s", path, m.ID, m.Vehicle, m.StoreID)
	}
	return m, nil
}

// Vehicles returns the vehicles the catalog holds checkpoints of, sorted.
func (c *Catalog) Vehicles() ([]string, error) {
	vs, err := readDirs(c.root)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(vs, func(v string) bool { return !ValidVehicle(v) }), nil
}

// Delete removes checkpoint id from the catalog (not its chunks), with
// its last verification; an absent checkpoint is no error.
func (c *Catalog) Delete(vehicle, store, id string) error {
	if err := checkParts(vehicle, store, id); err != nil {
		return err
	}
	path := c.path(vehicle, store, id)
	if err := os.Remove(c.verifyPath(vehicle, store, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checkpoint %s: delete: %w", id, err)
	}
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: delete: %w", id, err)
	}
	return nil
}

func (c *Catalog) path(vehicle, store, id string) string {
	return filepath.Join(c.root, vehicle, store, id+".json")
}

// readDirs returns the names of the directories in dir that are not
// hidden, sorted; none when dir is missing.
func readDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint catalog: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// checkParts refuses a vehicle, store id or checkpoint id that is not
// safe as a path element.
func checkParts(vehicle, store, id string) error {
	switch {
	case !ValidVehicle(vehicle):
		return fmt.Errorf("vehicle %q: not a vehicle name (1 to 64 of a-z A-Z 0-9 _ - ., not starting with .)", vehicle)
	case len(store) != 16 || !isHex(store):
		return fmt.Errorf("store id %q: not 16 hex digits", store)
	case !manifest.ValidID(id):
		return fmt.Errorf("checkpoint id %q: not <seq>-<kind>", id)
	}
	return nil
}

// ValidVehicle says whether s can name a vehicle in the catalog: the
// vehicle name rule of the telemetry link (batch names), 1 to 64 bytes of
// a-z, A-Z, 0-9, '_', '-' and '.', not starting with '.', so safe as a
// directory name.
func ValidVehicle(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
