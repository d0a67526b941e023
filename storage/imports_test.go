package storage

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package free of MQTT and ONNX Runtime, and of the
// other Vigil packages (storage is a leaf; its own sub-packages are fine).
func TestImports(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/vigil-av/vigil/storage/") {
				continue
			}
			for _, banned := range []string{"paho", "onnxruntime", "github.com/vigil-av/vigil/"} {
				if strings.Contains(path, banned) {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
