package kvstore

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/srdd/srdd/cluster"
)

// Checkpoint transfer (issue 24): a node that builds a copy of a durable
// RDD catches up from a checkpoint a peer holds on its own disk (the
// default CHECKPOINT-URI, DATA-DIR/checkpoints, is node-local). The
// checkpoint travels as a tar stream over the peer channel (mutual TLS,
// cluster key): ServeCheckpoint writes it on the holder, the node's
// CheckpointFetcher (cluster.Node.FetchCheckpoint) carries it, and
// fetchCheckpoint unpacks it into this node's own checkpoint dir of the
// RDD. No node ever reads another node's files.
//
// The stream is a tar of the checkpoint, file or directory, under its
// base name ("<index>-<unix ms>[-<node>]" or that name followed by "/"
// and the directory's files), followed by a trailer entry, ckptTrailer,
// holding the number of entries and bytes before it: a stream cut at an
// entry boundary (which tar alone cannot tell from its end) is refused.
//
// Both sides treat the other as untrusted input: the holder sends only a
// checkpoint of a durable RDD under that RDD's checkpoint dir, with no
// symbolic link followed out of the dir (os.Root) nor sent; the fetcher
// takes only relative names under the base name, regular files and
// directories, modes 0600 and 0700, within ckptMaxBytes and
// ckptMaxEntries, and renames the result into place only once all of it
// arrived and checked.

// Bounds of one transferred checkpoint.
const (
	// ckptMaxBytes bounds the file bytes of one checkpoint: 64 GiB, far
	// over a Parquet checkpoint of the largest RDD one interpreter holds
	// in memory, yet a bound on what a peer can make a node write.
	ckptMaxBytes = 64 << 30
	// ckptMaxEntries bounds its files and directories (Spark writes a
	// file or two per partition).
	ckptMaxEntries = 100_000
	// ckptMaxName bounds a name in the stream, in bytes, and ckptMaxDepth
	// its directory levels.
	ckptMaxName  = 1024
	ckptMaxDepth = 32
	// ckptHeaderSlack is what the fetcher reads beyond the file bytes for
	// each entry's headers (PAX records included), and the trailer.
	ckptHeaderSlack = 8 << 10
	// ckptTrailer names the last entry of the stream; a base name never
	// starts with ".".
	ckptTrailer = ".srdd-end"
	// ckptTempPrefix starts the name of a fetch in progress in the RDD's
	// checkpoint dir; one older than ckptTempStale is a crashed fetch's.
	ckptTempPrefix = ".fetch-"
	ckptTempStale  = 24 * time.Hour
)

// ckptBaseRE is the base name of a checkpoint (writeCheckpoint's
// "%020d-%d", optionally followed by "-<node id>").
var ckptBaseRE = regexp.MustCompile(`^[0-9]{20}-[0-9]+(-[A-Za-z0-9._-]+)?$`)

// CheckpointFetcher streams the checkpoint at path of shared RDD rdd from
// peer node `node` (its node id) into w, as the tar stream
// ServeCheckpoint writes there.
type CheckpointFetcher func(ctx context.Context, node, rdd, path string, w io.Writer) error

// SetCheckpointFetcher sets it (call before StartDurable).
func (s *Store) SetCheckpointFetcher(f CheckpointFetcher) { s.dur.fetcher = f }

// ckptTrailerBody is the trailer's content.
type ckptTrailerBody struct {
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// localCheckpoint checks that path names a checkpoint of durable RDD rdd
// in this node's local checkpoint dir of it, and returns that dir (a
// local absolute path) and the checkpoint's base name.
func (d *durable) localCheckpoint(rdd, path string) (dir, base string, err error) {
	if dir, err = d.localCheckpointDir(rdd); err != nil {
		return "", "", err
	}
	base, ok := strings.CutPrefix(path, d.checkpointDir(rdd)+"/")
	if !ok || !ckptBaseRE.MatchString(base) {
		return "", "", fmt.Errorf("%w: %q is not a checkpoint path of %q on this node (%s/<index>-<time>[-<node>])",
			ErrInvalid, path, rdd, d.checkpointDir(rdd))
	}
	return dir, base, nil
}

// localCheckpointDir checks that rdd is a durable RDD and this node's
// checkpoints are local, and returns the RDD's checkpoint dir (a local
// absolute path).
func (d *durable) localCheckpointDir(rdd string) (string, error) {
	if !d.on {
		return "", fmt.Errorf("%w: durable rdds are not enabled on this node", ErrInvalid)
	}
	if err := cluster.ValidRDDName(rdd); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if localPath(d.cfg.CheckpointURI) == "" {
		return "", fmt.Errorf("%w: this node's checkpoints are on shared storage (%s): read them there; they are not transferred between nodes",
			ErrInvalid, d.cfg.CheckpointURI)
	}
	dir := localPath(d.checkpointDir(rdd))
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return "", fmt.Errorf("%w: the checkpoint dir %q is not a clean absolute path", ErrInvalid, dir)
	}
	r, ok := d.s.reg.RDD(rdd)
	if !ok {
		return "", fmt.Errorf("%w: shared rdd %q", ErrNotFound, rdd)
	}
	if r.Mode != cluster.ModeDurable {
		return "", fmt.Errorf("%w: %q is a memory-mode rdd; only durable rdds have checkpoints", ErrInvalid, rdd)
	}
	return dir, nil
}

// peerCheckpointBase returns the base name of a checkpoint path on a peer
// (whose checkpoint dir is its own, unknown here; the peer checks the
// rest of the path).
func peerCheckpointBase(path string) (string, error) {
	base := path[strings.LastIndexByte(path, '/')+1:]
	if !ckptBaseRE.MatchString(base) {
		return "", fmt.Errorf("%w: %q does not end in a checkpoint name (<index>-<time>[-<node>])", ErrInvalid, path)
	}
	return base, nil
}

// ckptEntry is one file or directory of a checkpoint being sent; name is
// relative to the RDD's checkpoint dir.
type ckptEntry struct {
	name string
	dir  bool
	size int64
	mod  time.Time
}

// ServeCheckpoint writes to w a tar of the checkpoint `path` of `rdd`
// held on this node's disk. Everything that can be checked is checked
// before the first byte is written, so an error with nothing written is
// the request's (ErrInvalid, ErrNotFound); one after means the stream is
// broken and must be dropped.
func (s *Store) ServeCheckpoint(rdd, path string, w io.Writer) error {
	dir, base, err := s.dur.localCheckpoint(rdd, path)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: checkpoint %s of %q is not on this node", ErrNotFound, base, rdd)
	} else if err != nil {
		return fmt.Errorf("cannot open the checkpoint dir of %q: %w", rdd, err)
	}
	defer root.Close()
	entries, total, err := listCheckpoint(root, base)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := sendEntry(tw, root, e); err != nil {
			return fmt.Errorf("checkpoint %s of %q: %w", base, rdd, err)
		}
	}
	body, _ := json.Marshal(ckptTrailerBody{Entries: len(entries), Bytes: total})
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ckptTrailer, Mode: 0o600, Size: int64(len(body))}); err != nil {
		return err
	}
	if _, err := tw.Write(body); err != nil {
		return err
	}
	return tw.Close()
}

// listCheckpoint lists the checkpoint base in root, depth first, names
// sorted, refusing what the stream may not carry.
func listCheckpoint(root *os.Root, base string) ([]ckptEntry, int64, error) {
	var out []ckptEntry
	var total int64
	var walk func(name string, depth int) error
	walk = func(name string, depth int) error {
		fi, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: checkpoint %s is not on this node", ErrNotFound, name)
		} else if err != nil {
			return err
		}
		switch {
		case len(name) > ckptMaxName || depth > ckptMaxDepth:
			return fmt.Errorf("%w: checkpoint entry %q is too long or too deep to send", ErrInvalid, name)
		case len(out) >= ckptMaxEntries:
			return fmt.Errorf("%w: checkpoint %s has over %d files", ErrInvalid, base, ckptMaxEntries)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: checkpoint entry %q is a symbolic link; only files and directories are sent", ErrInvalid, name)
		case fi.Mode().IsRegular() && links(fi) > 1:
			// A hard link may name a file from outside the dir (where
			// protected_hardlinks is off): only single links are sent.
			return fmt.Errorf("%w: checkpoint file %q has %d hard links", ErrInvalid, name, links(fi))
		case fi.Mode().IsRegular():
			total += fi.Size()
			if total > ckptMaxBytes {
				return fmt.Errorf("%w: checkpoint %s holds over %d bytes", ErrInvalid, base, int64(ckptMaxBytes))
			}
			out = append(out, ckptEntry{name: name, size: fi.Size(), mod: fi.ModTime()})
			return nil
		case !fi.IsDir():
			return fmt.Errorf("%w: checkpoint entry %q is neither a file nor a directory (%s)", ErrInvalid, name, fi.Mode().Type())
		}
		out = append(out, ckptEntry{name: name, dir: true, mod: fi.ModTime()})
		f, err := openNoBlock(root, name)
		if err != nil {
			return err
		}
		kids, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return err
		}
		names := make([]string, 0, len(kids))
		for _, k := range kids {
			names = append(names, k.Name())
		}
		slices.Sort(names)
		for _, k := range names {
			if err := walk(name+"/"+k, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(base, 0); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// sendEntry writes one entry; a file must still be the regular file of
// the size listed.
func sendEntry(tw *tar.Writer, root *os.Root, e ckptEntry) error {
	if e.dir {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e.name + "/", Mode: 0o700, ModTime: e.mod})
	}
	f, err := openNoBlock(root, e.name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != e.size || links(fi) > 1 {
		return fmt.Errorf("%s changed while it was sent", e.name)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o600, Size: e.size, ModTime: e.mod}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, e.size); err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	return nil
}

// openNoBlock opens name in root for reading without blocking on a FIFO
// put in a file's place (the checkpoint dir may be a session's).
func openNoBlock(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// links returns a file's hard link count (1 if unknown).
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// fetchCheckpoint copies the checkpoint `path` of `rdd` from peer `node`
// (path as the peer wrote it, in its own checkpoint dir: the registry's
// CheckpointRef.Path) into this node's own checkpointDir(rdd), under the
// same base name, and
// returns the local path (in the same form checkpointDir gives: a plain
// absolute path or a file: URI, as CheckpointURI is written). It hands
// the dir to the interpreter it (d.ownCheckpoints(rdd, it)) afterwards
// so the session can read it. A checkpoint of that name already here is
// replaced. On any failure nothing of the fetch is left behind.
func (d *durable) fetchCheckpoint(ctx context.Context, it Interpreter, node, rdd, path string) (string, error) {
	base, err := peerCheckpointBase(path)
	if err != nil {
		return "", err
	}
	dir, err := d.localCheckpointDir(rdd)
	if err != nil {
		return "", err
	}
	if node == d.s.reg.ID() {
		return "", fmt.Errorf("%w: checkpoint %s of %q is this node's own; nothing to fetch", ErrInvalid, base, rdd)
	}
	if d.fetcher == nil {
		return "", errors.New("this node cannot fetch checkpoints from peers (no fetcher set)")
	}
	if err := d.disk.Check(); err != nil {
		return "", fmt.Errorf("cannot fetch checkpoint %s of %q: %w", base, rdd, err)
	}
	if err := makeCheckpointDir(dir); err != nil {
		return "", fmt.Errorf("cannot fetch checkpoint %s of %q: %w", base, rdd, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("cannot fetch checkpoint %s of %q: %w", base, rdd, err)
	}
	defer root.Close()
	removeStaleFetches(root)
	tmp := ckptTempPrefix + base + "-" + randomHex()
	if err := root.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("cannot fetch checkpoint %s of %q: %w", base, rdd, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = root.RemoveAll(tmp)
		}
	}()
	if err := d.receive(ctx, root, tmp, node, rdd, path, base); err != nil {
		return "", fmt.Errorf("cannot fetch checkpoint %s of %q from %s: %w", base, rdd, node, err)
	}
	// It is named as this node names its own (checkpointName), so this
	// node's garbage collection of old checkpoints covers it.
	// From the source's index and time, so fetching it again replaces it.
	local := base[:20] + "-" + strings.SplitN(base, "-", 3)[1] + "-" + d.s.reg.ID()
	// The old copy, if any, goes into the temp dir, which is removed.
	if _, err := root.Lstat(local); err == nil {
		if err := root.Rename(local, tmp+"/.old"); err != nil {
			return "", fmt.Errorf("cannot replace checkpoint %s of %q: %w", local, rdd, err)
		}
	}
	if err := root.Rename(tmp+"/"+base, local); err != nil {
		_ = root.Rename(tmp+"/.old", local) // the old copy back, if there was one
		return "", fmt.Errorf("cannot move checkpoint %s of %q into place: %w", local, rdd, err)
	}
	ok = true
	syncDir(root, ".")
	_ = root.RemoveAll(tmp)
	if err := d.ownCheckpoints(rdd, it); err != nil {
		return "", fmt.Errorf("fetched checkpoint %s of %q: %w", base, rdd, err)
	}
	return d.checkpointDir(rdd) + "/" + local, nil
}

// receive runs the fetcher and unpacks its stream into root's dir tmp.
func (d *durable) receive(ctx context.Context, root *os.Root, tmp, node, rdd, path, base string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	go func() {
		err := d.fetcher(ctx, node, rdd, path, pw)
		pw.CloseWithError(err) // nil: EOF
		fetched <- err
	}()
	dst, err := root.OpenRoot(tmp)
	if err == nil {
		var written []string
		written, err = untarCheckpoint(pr, dst, base, d.disk.Check)
		if err == nil {
			err = giveOwner(root, dst, written)
		}
		dst.Close()
	}
	if err != nil {
		cancel()
		pr.CloseWithError(err) // unblocks the fetcher's writes
		<-fetched
		return err
	}
	if err := <-fetched; err != nil {
		return err
	}
	return nil
}

// untarCheckpoint unpacks the stream of checkpoint base into dst,
// checking every header, and returns the names it wrote, parents first.
// diskCheck, if not nil, is asked before each file.
func untarCheckpoint(r io.Reader, dst *os.Root, base string, diskCheck func() error) ([]string, error) {
	// The whole read is bounded: file bytes plus headers.
	lr := &io.LimitedReader{R: r, N: ckptMaxBytes + (ckptMaxEntries+2)*ckptHeaderSlack}
	br := bufio.NewReaderSize(lr, 64<<10)
	tr := tar.NewReader(br)
	var (
		total   int64
		written []string            // in order, to give them dst's owner
		dirs    = map[string]bool{} // directories made so far
		trailer *ckptTrailerBody
	)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bad checkpoint stream: %w", err)
		}
		if trailer != nil {
			return nil, fmt.Errorf("bad checkpoint stream: entry %q after the trailer", h.Name)
		}
		if h.Name == ckptTrailer && h.Typeflag == tar.TypeReg {
			if h.Size > 4096 {
				return nil, errors.New("bad checkpoint stream: trailer too large")
			}
			var t ckptTrailerBody
			if err := json.NewDecoder(io.LimitReader(tr, 4096)).Decode(&t); err != nil {
				return nil, fmt.Errorf("bad checkpoint stream: trailer: %w", err)
			}
			trailer = &t
			continue
		}
		if len(written) >= ckptMaxEntries {
			return nil, fmt.Errorf("checkpoint has over %d entries", ckptMaxEntries)
		}
		name, err := checkEntryName(h, base, len(written) == 0)
		if err != nil {
			return nil, err
		}
		if parent := path.Dir(name); name != base && !dirs[parent] {
			return nil, fmt.Errorf("bad checkpoint stream: %q comes before its directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := dst.Mkdir(name, 0o700); err != nil {
				return nil, err
			}
			dirs[name] = true
		case tar.TypeReg:
			if h.Size < 0 || h.Size > ckptMaxBytes-total {
				return nil, fmt.Errorf("checkpoint holds over %d bytes", int64(ckptMaxBytes))
			}
			total += h.Size
			if diskCheck != nil {
				if err := diskCheck(); err != nil {
					return nil, err
				}
			}
			if err := writeEntry(dst, name, tr, h.Size); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("bad checkpoint stream: %q is of type %q; only files and directories are taken", h.Name, h.Typeflag)
		}
		written = append(written, name)
	}
	switch {
	case trailer == nil:
		return nil, errors.New("the checkpoint stream ended early (no trailer)")
	case len(written) == 0:
		return nil, errors.New("the checkpoint stream holds no checkpoint")
	case trailer.Entries != len(written) || trailer.Bytes != total:
		return nil, fmt.Errorf("the checkpoint stream does not match its trailer: %d entries of %d bytes came, the sender sent %d of %d",
			len(written), total, trailer.Entries, trailer.Bytes)
	}
	// Nothing may follow the end of the archive but padding.
	if n, _ := io.Copy(io.Discard, io.LimitReader(br, 1<<20+1)); n > 1<<20 {
		return nil, errors.New("bad checkpoint stream: data after the end of the archive")
	}
	for _, name := range slices.Backward(written) {
		if dirs[name] {
			syncDir(dst, name)
		}
	}
	syncDir(dst, ".")
	return written, nil
}

// checkEntryName returns the clean relative name of a tar entry of
// checkpoint base: base itself first, then names below it.
func checkEntryName(h *tar.Header, base string, first bool) (string, error) {
	name := h.Name
	if h.Typeflag == tar.TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("bad checkpoint stream: entry %q %s", h.Name, why)
	}
	switch {
	case len(name) > ckptMaxName:
		return bad("is too long")
	case strings.ContainsAny(name, "\\\x00") || !filepath.IsLocal(name) || path.Clean(name) != name || strings.HasPrefix(name, "/"):
		return bad("is not a clean relative name")
	case strings.Count(name, "/") > ckptMaxDepth:
		return bad("is too deep")
	case first && name != base:
		return bad("is not the checkpoint " + base)
	case !first && !strings.HasPrefix(name, base+"/"):
		return bad("is not inside the checkpoint " + base)
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return bad("has an empty, . or .. element")
		}
	}
	return name, nil
}

// writeEntry writes one file of n bytes from r, 0600, and syncs it.
func writeEntry(dst *os.Root, name string, r io.Reader, n int64) error {
	f, err := dst.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, n); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, noSpace(err))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, noSpace(err))
	}
	return f.Close()
}

// giveOwner gives the entries written under dst the owner of the RDD's
// checkpoint dir, root, when this process is not it: with
// --interpreter-uids or --interpreter-user the node writes as root into
// a dir of the interpreters' account, which must read what it wrote.
// (ownCheckpoints hands over a dir already the session's without looking
// inside it.)
func giveOwner(root, dst *os.Root, names []string) error {
	fi, err := root.Stat(".")
	if err != nil {
		return err
	}
	uid, gid, ok := fileOwner(fi)
	if !ok || uid == os.Geteuid() {
		return nil
	}
	for _, n := range names {
		if err := dst.Lchown(n, uid, gid); err != nil {
			return fmt.Errorf("cannot give %s to uid %d: %w", n, uid, err)
		}
	}
	return nil
}

// makeCheckpointDir makes an RDD's local checkpoint dir if it is missing,
// 0700, owned as the checkpoint root is (then handed to the session by
// ownCheckpoints).
func makeCheckpointDir(dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	fi, err := os.Stat(parent)
	if err != nil {
		return err
	}
	if uid, gid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return os.Lchown(dir, uid, gid)
	}
	return nil
}

// noSpace makes a full filesystem cluster.ErrInsufficientStorage (507).
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", cluster.ErrInsufficientStorage, err)
	}
	return err
}

// fileOwner returns the uid and gid owning a file.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// removeStaleFetches deletes what fetches that crashed left in root.
func removeStaleFetches(root *os.Root) {
	f, err := root.Open(".")
	if err != nil {
		return
	}
	ents, _ := f.ReadDir(-1)
	f.Close()
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ckptTempPrefix) {
			continue
		}
		if fi, err := root.Lstat(e.Name()); err == nil && time.Since(fi.ModTime()) > ckptTempStale {
			_ = root.RemoveAll(e.Name())
		}
	}
}

// syncDir flushes a directory's entries (best effort).
func syncDir(root *os.Root, name string) {
	if f, err := root.Open(name); err == nil {
		_ = f.Sync()
		f.Close()
	}
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
