package sparkbridge

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"testing"
)

// servedOps lists the ops the embedded interpreter serves: the keys of its
// handler table ("op": self._op_...) and the ops _dispatch answers itself
// (if op == "...").
func servedOps(t *testing.T) []string {
	t.Helper()
	src, err := pythonFS.ReadFile("python/srdd_interpreter/server.py")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*"([a-z][a-z._]*)":\s*self\._op_\w+,|\bif op == "([a-z][a-z._]*)":`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		seen[m[1]+m[2]] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// designOps lists the ops in the op table of DESIGN.md: rows that start
// with a quoted op name.
func designOps(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?m)^\\| `([a-z][a-z._]*)` \\|")
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		if seen[m[1]] {
			t.Errorf("DESIGN.md lists op %q twice", m[1])
		}
		seen[m[1]] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// TestDesignOpTableMatchesServer keeps the documented protocol and the
// interpreter's dispatch table in step.
func TestDesignOpTableMatchesServer(t *testing.T) {
	served, documented := servedOps(t), designOps(t)
	// The parser must still find the dispatch table: ping and shutdown
	// from _dispatch, the rest from the handler table.
	if len(served) < 20 || !slices.Contains(served, "ping") || !slices.Contains(served, "kv.get") {
		t.Fatalf("found only %d ops in server.py (%v): has its dispatch table changed shape?", len(served), served)
	}
	for _, op := range served {
		if !slices.Contains(documented, op) {
			t.Errorf("server.py serves %q, which the op table of DESIGN.md lacks", op)
		}
	}
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("DESIGN.md documents %q, which server.py does not serve", op)
		}
	}
}
