package wire

import (
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure keeps the codec a codec: standard library only, and none of the
// packages that do I/O, read the clock or run things concurrently.
func TestPure(t *testing.T) {
	forbidden := map[string]bool{"os": true, "net": true, "syscall": true, "sync": true, "io": true, "log": true}
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[path] {
				t.Errorf("%s imports %s: the codec does no I/O", name, path)
			}
			if pkg, err := build.Import(path, "", build.FindOnly); err != nil || !pkg.Goroot {
				t.Errorf("%s imports %s, which is not in the standard library", name, path)
			}
		}
	}
}
