package client

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSharesNoCodeWithTheServer keeps docs/protocol.md the only contract:
// the client's source imports nothing of this module (not agent, not
// agent/wire).
func TestSharesNoCodeWithTheServer(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/vigil-av/vigil") {
				t.Errorf("%s imports %s: the client must be written from docs/protocol.md alone", name, path)
			}
		}
	}
}
