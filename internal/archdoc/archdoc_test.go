// Package archdoc checks that the architecture page the code cites,
// docs/ARCHITECTURE.md, holds everything the citations point at.
package archdoc

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/srdd/srdd/internal/testutil"
)

var (
	// An item of the numbered list under "## Invariants".
	numberedRe = regexp.MustCompile(`(?m)^(\d+)\. `)
	// "invariant 6", "Invariants 4 and 5", "invariants 3, 10".
	citationRe = regexp.MustCompile(`(?i)\binvariants?\s+(\d+(?:\s*(?:,|and|or)\s*\d+)*)`)
	numberRe   = regexp.MustCompile(`\d+`)
)

// numbered returns the invariant numbers the page defines.
func numbered(t *testing.T, doc string) []int {
	t.Helper()
	start := strings.Index(doc, "\n## Invariants")
	if start < 0 {
		t.Fatal(`docs/ARCHITECTURE.md has no "## Invariants" section`)
	}
	sec := doc[start+1:]
	if end := strings.Index(sec[1:], "\n## "); end >= 0 {
		sec = sec[:end+1]
	}
	var out []int
	for _, m := range numberedRe.FindAllStringSubmatch(sec, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// citation is one invariant number cited on a line of a file.
type citation struct{ line, n int }

// citationsAt returns every invariant number text cites, with its line.
func citationsAt(text string) []citation {
	var out []citation
	for _, m := range citationRe.FindAllStringSubmatchIndex(text, -1) {
		line := strings.Count(text[:m[0]], "\n") + 1
		for _, d := range numberRe.FindAllString(text[m[2]:m[3]], -1) {
			n, _ := strconv.Atoi(d)
			out = append(out, citation{line, n})
		}
	}
	return out
}

func citations(text string) []int {
	var out []int
	for _, c := range citationsAt(text) {
		out = append(out, c.n)
	}
	return out
}

func TestCitationsAreFound(t *testing.T) {
	f := func(text string, want ...int) {
		t.Helper()
		if got := citations(text); !slices.Equal(got, want) {
			t.Errorf("citations(%q) = %v, want %v", text, got, want)
		}
	}
	f("see docs/ARCHITECTURE.md invariant 3.", 3)
	f("Invariants 4 and 5: a durable write", 4, 5)
	f("(invariants 3, 10)", 3, 10)
	f("// Invariant 6: KV calls", 6)
	f("an invariant of the store holds")
	f("Invariants 4 and\n5: across a line break", 4, 5)
}

// TestEveryCitedInvariantIsNumbered scans the tree's Go, Python and
// Markdown files: each "invariant N" must be an item of the numbered list
// in docs/ARCHITECTURE.md, and the list must be 1..N without gaps.
func TestEveryCitedInvariantIsNumbered(t *testing.T) {
	root := testutil.RepoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	nums := numbered(t, string(doc))
	if len(nums) < 11 {
		t.Fatalf("docs/ARCHITECTURE.md numbers %d invariants (%v), want at least 11", len(nums), nums)
	}
	for i, n := range nums {
		if n != i+1 {
			t.Fatalf("docs/ARCHITECTURE.md numbers its invariants %v, want 1..%d in order", nums, len(nums))
		}
	}
	cited := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "__pycache__", ".pytest_cache", "spark-warehouse":
				return filepath.SkipDir
			}
			if strings.HasPrefix(d.Name(), ".venv") { // .venv, .venv-airflow, .venv-connect: installed packages
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".py", ".md":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, c := range citationsAt(string(b)) {
			cited++
			if !slices.Contains(nums, c.n) {
				t.Errorf("%s:%d cites invariant %d, which docs/ARCHITECTURE.md does not number", rel, c.line, c.n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cited < 10 {
		t.Errorf("found only %d citations of invariants in the tree: is the scan looking in the right place?", cited)
	}
}
