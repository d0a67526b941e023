package drill

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
)

// standardFiles are the standard drills, one scenario per file named
// after the drill.
//
//go:embed standard/*.yaml
var standardFiles embed.FS

// Standard returns the standard drills shipped with Vigil, sorted by
// name. Each call returns fresh copies.
func Standard() []Scenario {
	entries, err := standardFiles.ReadDir("standard")
	if err != nil {
		panic(fmt.Sprintf("drill: embedded standard drills: %v", err))
	}
	out := make([]Scenario, 0, len(entries))
	for _, e := range entries {
		s, err := readStandard(e.Name())
		if err != nil {
			// The package's tests parse every embedded file.
			panic(fmt.Sprintf("drill: embedded standard drill: %v", err))
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the standard drill of that name.
func Lookup(name string) (Scenario, bool) {
	if !slug.MatchString(name) || len(name) > MaxNameLen {
		return Scenario{}, false
	}
	s, err := readStandard(name + ".yaml")
	if err != nil || s.Name != name {
		return Scenario{}, false
	}
	return s, true
}

// StandardNames lists the standard drills' names, sorted.
func StandardNames() []string {
	entries, _ := standardFiles.ReadDir("standard")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

func readStandard(file string) (Scenario, error) {
	p := path.Join("standard", file)
	data, err := standardFiles.ReadFile(p)
	if err != nil {
		return Scenario{}, err
	}
	return Parse(data, p)
}
