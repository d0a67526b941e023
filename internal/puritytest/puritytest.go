// Package puritytest checks, from a test, that a package is a pure core
// (STYLE.md, habit 1): its non-test files import only the standard
// library (less the packages that do I/O or run things concurrently) and
// the packages the caller allows, start no goroutine, and never read the
// clock, sleep or make timers — time comes in through the caller's
// `now`. The watchdog's machine, the deployment lifecycle and the rollout
// planner run it.
package puritytest

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

// forbidden are the standard packages a pure core may not import.
var forbidden = map[string]bool{
	"os": true, "os/exec": true, "net": true, "net/http": true, "io/ioutil": true,
	"syscall": true, "log": true, "log/slog": true, "sync": true, "unsafe": true,
	"math/rand": true, "math/rand/v2": true, "crypto/rand": true,
}

// banned are the time package's functions that read the clock or wait.
var banned = map[string]bool{
	"Now": true, "Sleep": true, "Since": true, "Until": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
}

// Check checks the package in the current directory (a test's): what
// names the core in messages ("the machine"); allow lists the import
// paths outside the standard library it may use (pure packages of this
// module).
func Check(t *testing.T, what string, allow ...string) {
	t.Helper()
	fset, files := sourceFiles(t)
	allowed := map[string]bool{}
	for _, a := range allow {
		allowed[a] = true
	}
	for name, f := range files {
		checkImports(t, name, f, what, allowed)
		checkBody(t, fset, name, f)
	}
}

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
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments|parser.SkipObjectResolution)
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

func checkImports(t *testing.T, name string, f *ast.File, what string, allowed map[string]bool) {
	t.Helper()
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch first, _, _ := strings.Cut(path, "/"); {
		case allowed[path]:
		case forbidden[path]:
			t.Errorf("%s imports %q: %s does no I/O and runs nothing concurrently", name, path, what)
		case strings.Contains(first, "."):
			t.Errorf("%s imports %q, which is not in the standard library", name, path)
		default:
			if pkg, err := build.Import(path, "", build.FindOnly); err != nil || !pkg.Goroot {
				t.Errorf("%s imports %q, which is not in the standard library (%v)", name, path, err)
			}
		}
	}
}

// checkBody refuses go statements and the clock, in the syntax tree and,
// in case of a construct the walk misses, in the text less its comments
// (which may mention them).
func checkBody(t *testing.T, fset *token.FileSet, name string, f *ast.File) {
	t.Helper()
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
				t.Errorf("%s: time.%s: time comes in as now", fset.Position(n.Pos()), n.Sel.Name)
			}
		}
		return true
	})
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
	for _, s := range []string{"time.Now(", "time.Sleep(", "go func"} {
		if strings.Contains(string(src), s) {
			t.Errorf("%s contains %q", name, s)
		}
	}
}
