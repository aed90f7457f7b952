package sparkbridge

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// pythonFS holds the interpreter package, compiled into the binary so a
// node needs nothing but Python with pyspark next to it.
//
//go:embed python/srdd_interpreter/*.py
var pythonFS embed.FS

// ExtractPython writes the embedded interpreter package under
// dir/interpreter/<content-hash>/ (once per content) and returns the
// directory to put on PYTHONPATH.
func ExtractPython(dir string) (string, error) {
	names, err := fs.Glob(pythonFS, "python/srdd_interpreter/*.py")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	files := map[string][]byte{}
	for _, n := range names {
		b, err := pythonFS.ReadFile(n)
		if err != nil {
			return "", err
		}
		files[filepath.Base(n)] = b
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(n), len(b))
		h.Write(b)
	}
	root := filepath.Join(dir, "interpreter", hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(root, "srdd_interpreter", "__main__.py")); err == nil {
		return root, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(root), "extract-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(root), 0o750); err != nil {
			return "", fmt.Errorf("cannot create interpreter dir: %w", err)
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(root), "extract-"); err != nil {
			return "", fmt.Errorf("cannot create interpreter dir: %w", err)
		}
	}
	pkg := filepath.Join(tmp, "srdd_interpreter")
	if err := os.Mkdir(pkg, 0o750); err != nil {
		return "", fmt.Errorf("cannot extract interpreter: %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), b, 0o640); err != nil {
			return "", fmt.Errorf("cannot extract interpreter: %w", err)
		}
	}
	if err := os.Rename(tmp, root); err != nil {
		_ = os.RemoveAll(tmp)
		// Another process may have extracted the same content first.
		if _, statErr := os.Stat(filepath.Join(root, "srdd_interpreter", "__main__.py")); statErr == nil {
			return root, nil
		}
		return "", fmt.Errorf("cannot extract interpreter: %w", err)
	}
	return root, nil
}
