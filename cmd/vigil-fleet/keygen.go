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
		if len(args) > 0 {
			return fmt.Errorf("keygen: unexpected arguments %q; the path goes in --out", args)
		}
		if *out == "" {
			return errors.New("keygen: --out is required: a prefix such as ./ops-alice, or a directory")
		}
		prefix := *out
		if st, err := os.Stat(prefix); (err == nil && st.IsDir()) || strings.HasSuffix(prefix, string(filepath.Separator)) {
			prefix = filepath.Join(prefix, "fleet")
		}
		privPath, pubPath := prefix+".key", prefix+".pub"
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("keygen: %s exists; refusing to overwrite a key (move it away or choose another --out)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("keygen: %w", err)
			}
		}
		pub, priv, id, err := command.KeyGen(nil)
		if err != nil {
			return err
		}
		if err := writeNew(privPath, cmdlink.MarshalPrivateKey(priv), 0o600); err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		if err := writeNew(pubPath, cmdlink.MarshalPublicKey(pub), 0o644); err != nil {
			os.Remove(privPath)
			return fmt.Errorf("keygen: %w", err)
		}
		fmt.Fprintf(g.stdout, "private key: %s (mode 0600; keep it secret, give it to `vigil-fleet cmd --key`)\n", privPath)
		fmt.Fprintf(g.stdout, "public key:  %s (list it in the vehicles' sync.commands.trusted_keys)\n", pubPath)
		fmt.Fprintf(g.stdout, "key id:      %s\n", id)
		return nil
	}
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
