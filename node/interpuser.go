package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/kvstore"
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

// interpreterAccounts returns whom interpreters run as: with
// --interpreter-uids a pool of uids, one per live session and batch
// driver, and the account of their shared group (runAs: its GID only,
// for read-only things; never for a session's own data); with
// --interpreter-user that account for all; else nil, nil (the node's).
func interpreterAccounts(cfg Config) (runAs *sparkbridge.User, uids *sparkbridge.UIDPool, err error) {
	switch {
	case cfg.InterpreterUIDs != "" && cfg.InterpreterUser != "":
		return nil, nil, fmt.Errorf("--interpreter-uids and --interpreter-user: give one (--interpreter-uids isolates sessions from each other too)")
	case cfg.InterpreterUIDs != "":
		first, last, err := sparkbridge.ParseUIDRange(cfg.InterpreterUIDs)
		if err != nil {
			return nil, nil, err
		}
		if uids, err = sparkbridge.NewUIDPool(first, last, 0); err != nil {
			return nil, nil, err
		}
		return &sparkbridge.User{Name: fmt.Sprintf("the group of --interpreter-uids (gid %d)", uids.GID), UID: first, GID: uids.GID}, uids, nil
	case cfg.InterpreterUser != "":
		runAs, err = sparkbridge.LookupUser(cfg.InterpreterUser)
		return runAs, nil, err
	}
	return nil, nil, nil
}

// giveToInterpreters hands the interpreters the directories they write
// in: a local checkpoint dir (Spark writes the Parquet files) and the
// default file root (loads and saves run in the interpreter). The Raft
// dir and everything else in the data dir stay the node's. With one
// account (--interpreter-user) both are that account's. With a uid per
// session (uids) the checkpoint root is root's, 0711 (no listing), and
// each RDD's dir in it belongs to its owning session's uid, 0700
// (ownCheckpointDir); the default file root is a shared drop box, root's
// with the group, 01770 (no one removes another's files). uids then
// gives a returned uid's files there back to root.
func giveToInterpreters(runAs *sparkbridge.User, uids *sparkbridge.UIDPool, cfg Config, dataDir, checkpointURI string) error {
	if runAs == nil {
		return nil
	}
	var ckpt, files string
	if _, p, local := fileroot.Split(checkpointURI); local && p != "" && !cfg.MemoryOnly {
		ckpt = p
	}
	if len(cfg.FileRoots) == 0 {
		files = filepath.Join(dataDir, "files")
	}
	if uids != nil {
		var reclaim []string
		for _, d := range []struct {
			path string
			gid  int
			mode os.FileMode
		}{{ckpt, 0, 0o711}, {files, int(uids.GID), 0o1770}} {
			if d.path == "" {
				continue
			}
			if err := os.MkdirAll(d.path, 0o700); err != nil {
				return fmt.Errorf("cannot create %s: %w", d.path, err)
			}
			if err := os.Lchown(d.path, 0, d.gid); err != nil {
				return fmt.Errorf("cannot give %s to root: %w", d.path, err)
			}
			if err := os.Chmod(d.path, d.mode); err != nil {
				return fmt.Errorf("cannot restrict %s: %w", d.path, err)
			}
			reclaim = append(reclaim, d.path)
		}
		reclaim = append(reclaim, filepath.Join(dataDir, "work"), filepath.Join(dataDir, "batches"))
		return uids.SetReclaim(reclaim...)
	}
	var dirs []string
	for _, d := range []string{ckpt, files} {
		if d != "" {
			dirs = append(dirs, d)
		}
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

// ownCheckpointDir gives a durable RDD's checkpoint dir to the session
// whose interpreter is about to write, read or delete it (--interpreter-
// uids): created if need be, owned by that session's uid, 0700, and
// everything in it handed over from a former owner (a rebuild in a new
// session). The node, root, still reads it to recover. A dir on remote
// storage (hdfs://, s3a://) is left to that storage's own permissions.
func ownCheckpointDir(dir string, it kvstore.Interpreter) error {
	bi, ok := it.(interface{ User() *sparkbridge.User })
	if !ok || bi.User() == nil {
		return nil
	}
	u := bi.User()
	_, p, local := fileroot.Split(dir)
	if !local || p == "" {
		return nil
	}
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cannot create checkpoint dir: %w", err)
	}
	if fi, err := os.Lstat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == u.UID && fi.Mode().Perm() == 0o700 {
			return nil // already this session's
		}
	}
	err := filepath.WalkDir(p, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(u.UID), int(u.GID))
	})
	if err == nil {
		err = os.Chmod(p, 0o700)
	}
	if err != nil {
		return fmt.Errorf("cannot give checkpoint dir to the session (%s): %w", u.Name, err)
	}
	return nil
}
