package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Canonical returns the bytes a signature covers: m without its signature
// as compact JSON, members in the order of Manifest's fields, optional
// members (providers, tolerance) left out when empty. Validate keeps every
// string free of control characters, so the only escapes are \" and \\
// (docs/models.md spells the form out). Equal manifests have equal
// encodings however bundle.json was laid out.
func Canonical(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	c := *m
	c.Signature = nil
	return encode(&c, "")
}

// Encode returns the text of bundle.json for m: the same members as the
// canonical form, signature included, indented for reading.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := encode(m, "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Hash is the bundle's identity, to pin a download to: the lower-case hex
// SHA-256 of the canonical encoding of the whole manifest, signature
// included. Since the manifest holds every file's SHA-256, it covers the
// files too; signing (or re-signing) changes it.
func (m *Manifest) Hash() (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	b, err := encode(m, "")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func encode(m *Manifest, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("bundle: encode manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Sign signs m with a model-signing key, replacing any signature it had.
// It refuses a manifest Validate refuses.
func Sign(m *Manifest, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("bundle: sign: a private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	msg, err := Canonical(m)
	if err != nil {
		return err
	}
	m.Signature = &Signature{
		KeyID:   KeyID(priv.Public().(ed25519.PublicKey)),
		Ed25519: ed25519.Sign(priv, msg),
	}
	return nil
}

// checkSignature finds the key m's signature names among trusted and
// verifies the signature with it.
func checkSignature(m *Manifest, trusted []ed25519.PublicKey) error {
	s := m.Signature
	if s == nil {
		return fmt.Errorf("%w: %s v%d has no signature (sign it with vigil-fleet model sign)", ErrUnsigned, m.Name, m.Version)
	}
	var key ed25519.PublicKey
	for _, k := range trusted {
		if KeyID(k) == s.KeyID {
			key = k
			break
		}
	}
	if key == nil {
		return fmt.Errorf("%w: key id %s is not among the %d trusted model-signing keys", ErrUnknownKey, s.KeyID, len(trusted))
	}
	msg, err := Canonical(m)
	if err != nil {
		return err
	}
	if !ed25519.Verify(key, msg, s.Ed25519) {
		return fmt.Errorf("%w: %s v%d does not verify with key %s (the manifest was changed after signing, or the signature is damaged)", ErrBadSignature, m.Name, m.Version, s.KeyID)
	}
	return nil
}
