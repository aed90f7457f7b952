package node

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/sparkbridge"
)

// interpreterDirs prepares what interpreters running as runAs need from
// the data dir (docs/ARCHITECTURE.md, "Sessions hold no secret"): the
// extracted interpreter package, readable through runAs's group, and the
// root of the per-session work dirs, which it returns. Without runAs,
// interpreters run as the node and keep its working directory ("").
func interpreterDirs(runAs *sparkbridge.User, dataDir string) (string, error) {
	if runAs == nil {
		return "", nil
	}
	// The package is the node's, readable through runAs's group: dirs
	// 0750, files 0640.
	err := filepath.WalkDir(filepath.Join(dataDir, "interpreter"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, 0, int(runAs.GID)); err != nil {
			return err
		}
		mode := os.FileMode(0o640)
		if d.IsDir() {
			mode = 0o750
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		return "", fmt.Errorf("cannot share the interpreter package with %s: %w", runAs.Name, err)
	}
	work := filepath.Join(dataDir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", fmt.Errorf("cannot create work root: %w", err)
	}
	if err := runAs.ShareGroup(work, 0o710); err != nil {
		return "", err
	}
	return work, nil
}

// giveToInterpreters hands runAs the directories interpreters write in:
// a local checkpoint dir (Spark writes the Parquet files) and the
// default file root (loads and saves run in the interpreter). The Raft
// dir and everything else in the data dir stay the node's.
func giveToInterpreters(runAs *sparkbridge.User, cfg Config, dataDir, checkpointURI string) error {
	if runAs == nil {
		return nil
	}
	var dirs []string
	if _, p, local := fileroot.Split(checkpointURI); local && p != "" && !cfg.MemoryOnly {
		dirs = append(dirs, p)
	}
	if len(cfg.FileRoots) == 0 {
		dirs = append(dirs, filepath.Join(dataDir, "files"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("cannot create %s: %w", d, err)
		}
		if err := runAs.Own(d); err != nil {
			return err
		}
	}
	return nil
}
