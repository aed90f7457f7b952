package tlsconf

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBadFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCert(bad, bad); err == nil {
		t.Error("a bad certificate loads")
	}
	if _, err := Pool(bad); err == nil {
		t.Error("a CA file without certificates loads")
	}
	if _, err := Client(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("a missing CA file loads")
	}
	if c, err := Client(""); err != nil || c.RootCAs != nil {
		t.Errorf("no CA file: %v, %v; want the system roots", c, err)
	}
}
