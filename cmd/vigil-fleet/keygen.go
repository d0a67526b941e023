package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

func setupKeygen(g *globals, fset *flag.FlagSet) func(context.Context, []string) error {
	out := fset.String("out", "", "where to write: a prefix (writes <prefix>.key and <prefix>.pub) or an existing directory (writes fleet.key and fleet.pub in it); required")
	return func(_ context.Context, args []string) error {
		return writeKeyPair(g, keyPair{cmd: "keygen", out: *out, dirName: "fleet", example: "./ops-alice",
			privUse: "give it to `vigil-fleet cmd --key`", pubUse: "list it in the vehicles' sync.commands.trusted_keys",
			make: func() ([]byte, []byte, string, error) {
				pub, priv, id, err := command.KeyGen(nil)
				if err != nil {
					return nil, nil, "", err
				}
				return cmdlink.MarshalPublicKey(pub), cmdlink.MarshalPrivateKey(priv), id, nil
			}}, args)
	}
}

// keyPair is what a keygen command writes: a kind of key's two files.
type keyPair struct {
	cmd, out, dirName, example string
	privUse, pubUse            string                                          // what each file is for, in the report
	make                       func() (pub, priv []byte, id string, err error) // the key files' text
}

// writeKeyPair writes a new key pair to --out: a prefix, or a directory that
// gets <dirName>.key and <dirName>.pub. It never overwrites a key.
func writeKeyPair(g *globals, k keyPair, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s: unexpected arguments %q; the path goes in --out", k.cmd, args)
	}
	if k.out == "" {
		return fmt.Errorf("%s: --out is required: a prefix such as %s, or a directory", k.cmd, k.example)
	}
	prefix := k.out
	if st, err := os.Stat(prefix); (err == nil && st.IsDir()) || strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix = filepath.Join(prefix, k.dirName)
	}
	privPath, pubPath := prefix+".key", prefix+".pub"
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %s exists; refusing to overwrite a key (move it away or choose another --out)", k.cmd, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", k.cmd, err)
		}
	}
	pub, priv, id, err := k.make()
	if err != nil {
		return err
	}
	if err := writeNew(privPath, priv, 0o600); err != nil {
		return fmt.Errorf("%s: %w", k.cmd, err)
	}
	if err := writeNew(pubPath, pub, 0o644); err != nil {
		os.Remove(privPath)
		return fmt.Errorf("%s: %w", k.cmd, err)
	}
	fmt.Fprintf(g.stdout, "private key: %s (mode 0600; keep it secret, %s)\n", privPath, k.privUse)
	fmt.Fprintf(g.stdout, "public key:  %s (%s)\n", pubPath, k.pubUse)
	fmt.Fprintf(g.stdout, "key id:      %s\n", id)
	return nil
}

// writeNew creates path, which must not exist, with exactly mode, and
// syncs it.
func writeNew(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; refusing to overwrite a key", path)
		}
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err = f.Chmod(mode); err != nil { // whatever the umask
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}
