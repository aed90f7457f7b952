package pki

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names in a CA directory; a node's files are NAME.pem, NAME-key.pem.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// Modes: keys are readable by their owner only.
const (
	certMode fs.FileMode = 0o644
	keyMode  fs.FileMode = 0o600
	dirMode  fs.FileMode = 0o700
)

// ErrExists is returned when an output file exists and force is off.
var ErrExists = errors.New("file exists")

// output is one file to write.
type output struct {
	path string
	data []byte
	mode fs.FileMode
}

// WriteCA writes ca.pem and ca-key.pem (0600) into dir, creating dir
// (0700) if needed. Without force it refuses when either file exists.
func WriteCA(dir string, ca *CA, force bool) error {
	keyPEM, err := KeyPEM(ca.Key)
	if err != nil {
		return err
	}
	return writeAll(dir, force, []output{
		{filepath.Join(dir, CACertFile), CertPEM(ca.Cert.Raw), certMode},
		{filepath.Join(dir, CAKeyFile), keyPEM, keyMode},
	})
}

// LoadCA reads ca.pem and ca-key.pem from dir.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA key: %w", err)
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA in %s: %w", dir, err)
	}
	return ca, nil
}

// WritePair writes NAME.pem and NAME-key.pem (0600) into dir, and, unless
// dir already holds this CA's ca.pem, the CA certificate (never its key)
// as ca.pem, so that dir has all a node needs: --peer-cert, --peer-key,
// --peer-ca. Without force it refuses when any of them exists (an
// existing ca.pem that is this very CA certificate is left as it is).
func WritePair(dir, name string, ca *CA, certPEM, keyPEM []byte, force bool) error {
	if err := ValidName(name); err != nil {
		return err
	}
	outs := []output{
		{filepath.Join(dir, name+".pem"), certPEM, certMode},
		{filepath.Join(dir, name+"-key.pem"), keyPEM, keyMode},
	}
	caPath := filepath.Join(dir, CACertFile)
	caPEM := CertPEM(ca.Cert.Raw)
	if old, err := os.ReadFile(caPath); err != nil || !sameCert(old, ca) {
		outs = append(outs, output{caPath, caPEM, certMode})
	}
	return writeAll(dir, force, outs)
}

func sameCert(pemBytes []byte, ca *CA) bool {
	c, err := ParseCert(pemBytes)
	return err == nil && bytes.Equal(c.Raw, ca.Cert.Raw)
}

// writeAll checks every target first (so a refusal writes nothing), then
// writes each through a temporary file and a rename: a reader (a node
// reloading on SIGHUP) sees the old file or the new one, never half.
func writeAll(dir string, force bool, outs []output) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if !force {
		for _, o := range outs {
			if _, err := os.Lstat(o.path); err == nil {
				return fmt.Errorf("%s: %w (pass --force to replace it)", o.path, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	for _, o := range outs {
		if err := writeFile(o, force); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(o output, force bool) (err error) {
	if !force {
		// O_EXCL: a file that appeared since the check is not replaced.
		f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, o.mode)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w (pass --force to replace it)", o.path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", o.path, err)
		}
		return finish(f, o, f.Name())
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.path), "."+filepath.Base(o.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", o.path, err)
	}
	if err := finish(tmp, o, tmp.Name()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("cannot write %s: %w", o.path, err)
	}
	return nil
}

// finish sets the mode (the umask may have cut it; CreateTemp makes 0600,
// so a key is never readable by others, not even for a moment), writes,
// syncs and closes f; on error it removes the file at path.
func finish(f *os.File, o output, path string) error {
	err := f.Chmod(o.mode)
	if err == nil {
		if _, err = f.Write(o.data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", o.path, err)
	}
	return nil
}
