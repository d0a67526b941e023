package deploy

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sourceFiles parses the package's non-test Go files.
func sourceFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	if len(files) == 0 {
		t.Fatal("no source files found")
	}
	return fset, files
}

// TestImportsStandardLibraryOnly keeps the deployment core free of onnxruntime,
// badger, paho, zap and anything else outside the standard library, and of
// the standard packages that do I/O or run things concurrently.
func TestImportsStandardLibraryOnly(t *testing.T) {
	forbidden := map[string]bool{
		"os": true, "os/exec": true, "net": true, "net/http": true, "io/ioutil": true,
		"syscall": true, "log": true, "log/slog": true, "sync": true, "unsafe": true,
		"math/rand": true, "math/rand/v2": true, "crypto/rand": true,
	}
	_, files := sourceFiles(t)
	for name, f := range files {
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if forbidden[path] {
				t.Errorf("%s imports %q: the deployment core does no I/O and runs nothing concurrently", name, path)
				continue
			}
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") {
				t.Errorf("%s imports %q, which is not in the standard library", name, path)
				continue
			}
			pkg, err := build.Import(path, "", build.FindOnly)
			if err != nil || !pkg.Goroot {
				t.Errorf("%s imports %q, which is not in the standard library (%v)", name, path, err)
			}
		}
	}
}

// TestNoClockNoGoroutines keeps the deployment core pure: no go statements, no
// reading the clock, no sleeping or timers in the non-test source.
func TestNoClockNoGoroutines(t *testing.T) {
	banned := map[string]bool{
		"Now": true, "Sleep": true, "Since": true, "Until": true, "After": true,
		"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
	}
	fset, files := sourceFiles(t)
	for name, f := range files {
		timeName := "" // what the file calls package time
		for _, imp := range f.Imports {
			if imp.Path.Value == `"time"` {
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && banned[n.Sel.Name] {
					t.Errorf("%s: time.%s: time comes in through Step", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
		// The same as text, in case of a construct the walk above misses.
		// Comments may mention these (the shell's example does).
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		tf := fset.File(f.Pos())
		for _, cg := range f.Comments {
			for i := tf.Offset(cg.Pos()); i < tf.Offset(cg.End()); i++ {
				src[i] = ' '
			}
		}
		for _, s := range []string{"time.Now(", "time.Sleep(", "go func", "go d."} {
			if strings.Contains(string(src), s) {
				t.Errorf("%s contains %q", name, s)
			}
		}
	}
}
