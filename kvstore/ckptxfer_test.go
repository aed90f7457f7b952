package kvstore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// xferPair is two nodes' stores over one registry, each with its own
// local checkpoint dir: the holder of a checkpoint and the fetcher, whose
// CheckpointFetcher calls the holder's ServeCheckpoint (the HTTP hop is
// tested in node/).
type xferPair struct {
	holder, fetcher *Store
	owned           []string // dirs the fetcher's CheckpointOwner was given
}

func newXferPair(t *testing.T) *xferPair {
	t.Helper()
	reg := newFakeReg()
	reg.addSession(1)
	reg.addDurable("d", 1, nil, nil)
	reg.addMemory("m", 1)
	p := &xferPair{}
	mk := func() *Store {
		s := New(reg, &fakeSessions{its: map[int64]*fakeInterp{1: newFakeInterp()}, def: 1}, DefaultLimits())
		s.EnableDurable(DurableConfig{DiskReserve: -1}, t.TempDir())
		return s
	}
	p.holder, p.fetcher = mk(), mk()
	p.fetcher.SetCheckpointFetcher(func(_ context.Context, node, rdd, path string, w io.Writer) error {
		if node != "n2" {
			return fmt.Errorf("fetch from %q, want n2", node)
		}
		return p.holder.ServeCheckpoint(rdd, path, w)
	})
	p.fetcher.SetCheckpointOwner(func(dir string, _ Interpreter) error {
		p.owned = append(p.owned, dir)
		return nil
	})
	return p
}

// holderDir is the holder's local checkpoint dir of rdd d.
func (p *xferPair) holderDir() string { return localPath(p.holder.dur.checkpointDir("d")) }

const ckBase = "00000000000000000042-1700000000000-n2"

// writeTree writes files (relative name -> content; a name ending in "/"
// is a directory) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree reads every entry under dir: files as their content, dirs as
// "/", with their permission bits.
func readTree(t *testing.T, dir string) (map[string]string, map[string]fs.FileMode) {
	t.Helper()
	files, modes := map[string]string{}, map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		modes[rel] = fi.Mode().Perm()
		switch {
		case d.IsDir():
			files[rel] = "/"
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = string(b)
		default:
			files[rel] = "?" + fi.Mode().Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, modes
}

// renamedTree is readTree of dir with the entry from (and what is in
// it) named to instead.
func renamedTree(t *testing.T, dir, from, to string) map[string]string {
	t.Helper()
	files, _ := readTree(t, dir)
	out := map[string]string{}
	for k, v := range files {
		if k == from || strings.HasPrefix(k, from+"/") {
			k = to + k[len(from):]
		}
		out[k] = v
	}
	return out
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCheckpointTransfer copies a checkpoint directory (as PySpark's
// Parquet is) and a single-file one between two stores' checkpoint dirs:
// same base name, same bytes, modes 0700/0600, nothing else left in the
// fetcher's dir, the dir handed to the session after, and a second fetch
// of the same checkpoint replaces the first.
func TestCheckpointTransfer(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		files map[string]string // under the holder's checkpoint dir of d
	}{
		{"dir", map[string]string{
			ckBase + "/_SUCCESS":                  "",
			ckBase + "/part-00000.snappy.parquet": strings.Repeat("p0", 70_000),
			ckBase + "/part-00001.snappy.parquet": "p1",
			ckBase + "/sub/nested":                "n",
			ckBase + "/empty/":                    "",
		}},
		{"file", map[string]string{ckBase: `{"index":42}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newXferPair(t)
			writeTree(t, p.holderDir(), tc.files)
			src := p.holder.dur.checkpointDir("d") + "/" + ckBase
			got, err := p.fetcher.dur.fetchCheckpoint(ctx, nil, "n2", "d", src)
			if err != nil {
				t.Fatal(err)
			}
			dir := p.fetcher.dur.checkpointDir("d")
			// Named as the fetching node (n1) names its own checkpoints.
			if !strings.HasPrefix(got, dir+"/"+ckBase[:20]+"-") || !strings.HasSuffix(got, "-n1") {
				t.Fatalf("fetched to %s, want %s/%s-<ms>-n1", got, dir, ckBase[:20])
			}
			want := renamedTree(t, p.holderDir(), ckBase, filepath.Base(got))
			have, modes := readTree(t, localPath(dir))
			if !equalTrees(have, want) {
				t.Fatalf("fetched tree %v, want %v", have, want)
			}
			for name, m := range modes {
				if name == "." {
					continue
				}
				if wantM := fs.FileMode(0o600); have[name] == "/" && m != 0o700 || have[name] != "/" && m != wantM {
					t.Errorf("%s: mode %v", name, m)
				}
			}
			if len(p.owned) != 1 || p.owned[0] != dir {
				t.Errorf("checkpoint dir handed to the session: %v, want [%s]", p.owned, dir)
			}
			// Again, after the holder's copy changed: replaced.
			changed := map[string]string{}
			for name := range tc.files {
				if !strings.HasSuffix(name, "/") {
					changed[name] = "v2"
				}
			}
			writeTree(t, p.holderDir(), changed)
			if err := os.RemoveAll(localPath(got)); err != nil {
				t.Fatal(err)
			}
			if got, err = p.fetcher.dur.fetchCheckpoint(ctx, nil, "n2", "d", src); err != nil {
				t.Fatal(err)
			}
			want = renamedTree(t, p.holderDir(), ckBase, filepath.Base(got))
			if have, _ = readTree(t, localPath(dir)); !equalTrees(have, want) {
				t.Fatalf("second fetch: %v, want %v", have, want)
			}
		})
	}
}

// TestCheckpointTransferGivesDirOwner: a node running as root (with
// --interpreter-uids or --interpreter-user) gives what it fetched the
// owner of the RDD's checkpoint dir, so the session can read it even
// when the dir was already the session's (ownCheckpoints then does not
// look inside).
func TestCheckpointTransferGivesDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	p := newXferPair(t)
	writeTree(t, p.holderDir(), map[string]string{ckBase + "/a": "a", ckBase + "/s/b": "b"})
	dir := localPath(p.fetcher.dur.checkpointDir("d"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	got, err := p.fetcher.dur.fetchCheckpoint(context.Background(), nil, "n2", "d", p.holder.dur.checkpointDir("d")+"/"+ckBase)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Base(got)
	for _, name := range []string{local, local + "/a", local + "/s", local + "/s/b"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4242 || st.Gid != 4343 {
			t.Errorf("%s: owned by %d:%d, want 4242:4343", name, st.Uid, st.Gid)
		}
	}
}

// TestServeCheckpointRefuses: a peer's request is untrusted input. Only a
// checkpoint of a durable RDD, named as writeCheckpoint names them, in
// that RDD's local checkpoint dir, with no link in it, is sent; every
// refusal comes before the first byte.
func TestServeCheckpointRefuses(t *testing.T) {
	p := newXferPair(t)
	h := p.holder
	dir := h.dur.checkpointDir("d")
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret": "s", ckBase + "/x": "x"})
	writeTree(t, p.holderDir(), map[string]string{
		ckBase + "/ok": "ok",
	})
	mkLink := func(name, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(p.holderDir(), name)); err != nil {
			t.Fatal(err)
		}
	}
	// A checkpoint holding a link to a file outside, one that is a link to
	// a dir outside, one with a hard link, one with a FIFO.
	const linkIn, linkIs, hard, fifo = "00000000000000000001-1", "00000000000000000002-1", "00000000000000000003-1", "00000000000000000004-1"
	writeTree(t, p.holderDir(), map[string]string{linkIn + "/ok": "ok", hard + "/ok": "ok", fifo + "/ok": "ok"})
	mkLink(linkIn+"/secret", filepath.Join(outside, "secret"))
	mkLink(linkIs, filepath.Join(outside, ckBase))
	if err := os.Link(filepath.Join(outside, "secret"), filepath.Join(p.holderDir(), hard, "secret")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(p.holderDir(), fifo, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rdd, path string
		want      error
	}{
		{"d", dir + "/" + ckBase + "/..", ErrInvalid},
		{"d", dir + "/../d/" + ckBase, ErrInvalid},
		{"d", dir + "/" + ckBase + "/../" + ckBase, ErrInvalid},
		{"d", dir + "/..", ErrInvalid},
		{"d", outside + "/" + ckBase, ErrInvalid},           // outside the dir
		{"d", filepath.Join(outside, "secret"), ErrInvalid}, // outside the dir
		{"d", h.dur.checkpointDir("m") + "/" + ckBase, ErrInvalid},
		{"d", dir + "/ok", ErrInvalid},                             // not a checkpoint name
		{"d", dir + "/" + ckBase + "/ok", ErrInvalid},              // inside one
		{"d", dir + "/0000000000000000042-1", ErrInvalid},          // 19 digits
		{"d", dir + "/" + ckBase + "-a/b", ErrInvalid},             // a '/' in the node id
		{"d", dir + "/.fetch-" + ckBase + "-0", ErrInvalid},        // a fetch in progress
		{"d", "file://" + dir + "/" + ckBase, ErrInvalid},          // not as the node writes it
		{"m", h.dur.checkpointDir("m") + "/" + ckBase, ErrInvalid}, // memory mode
		{"../d", dir + "/" + ckBase, ErrInvalid},
		{"nope", h.dur.checkpointDir("nope") + "/" + ckBase, ErrNotFound},
		{"d", dir + "/00000000000000000009-1", ErrNotFound},
		{"d", dir + "/" + linkIn, ErrInvalid},
		{"d", dir + "/" + linkIs, ErrInvalid},
		{"d", dir + "/" + hard, ErrInvalid},
		{"d", dir + "/" + fifo, ErrInvalid},
	} {
		var w bytes.Buffer
		err := h.ServeCheckpoint(c.rdd, c.path, &w)
		if !errors.Is(err, c.want) {
			t.Errorf("%s %s: %v, want %v", c.rdd, c.path, err, c.want)
		}
		if w.Len() != 0 {
			t.Errorf("%s %s: wrote %d bytes before refusing", c.rdd, c.path, w.Len())
		}
	}
	// Control: the good one is served.
	var w bytes.Buffer
	if err := h.ServeCheckpoint("d", dir+"/"+ckBase, &w); err != nil || w.Len() == 0 {
		t.Fatalf("good checkpoint: %v (%d bytes)", err, w.Len())
	}
}

// TestServeCheckpointSharedStorage: with checkpoints on shared storage
// nothing is transferred (each node reads them there).
func TestServeCheckpointSharedStorage(t *testing.T) {
	reg := newFakeReg()
	reg.addSession(1)
	reg.addDurable("d", 1, nil, nil)
	s := New(reg, &fakeSessions{its: map[int64]*fakeInterp{1: newFakeInterp()}, def: 1}, DefaultLimits())
	s.EnableDurable(DurableConfig{CheckpointURI: "hdfs://nn/ck"}, t.TempDir())
	if err := s.ServeCheckpoint("d", "hdfs://nn/ck/d/"+ckBase, io.Discard); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "shared storage") {
		t.Fatalf("shared storage: %v", err)
	}
	s.SetCheckpointFetcher(func(context.Context, string, string, string, io.Writer) error {
		return errors.New("must not be called")
	})
	if _, err := s.dur.fetchCheckpoint(context.Background(), nil, "n2", "d", "/x/d/"+ckBase); !errors.Is(err, ErrInvalid) {
		t.Fatalf("fetch onto shared storage: %v", err)
	}
}

// tarEntry is one entry of a hand-made stream.
type tarEntry struct {
	h    tar.Header
	body string
}

func regEntry(name, body string) tarEntry {
	return tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body}
}

func dirEntry(name string) tarEntry {
	return tarEntry{tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}, ""}
}

func trailerEntry(entries int, bytes int64) tarEntry {
	return regEntry(ckptTrailer, fmt.Sprintf(`{"entries":%d,"bytes":%d}`, entries, bytes))
}

// TestFetchCheckpointRefusesBadStreams: a peer's stream is untrusted.
// Names that leave the checkpoint, links, devices, oversize entries, a
// stream cut short or not matching its trailer: each fetch fails and
// leaves nothing behind, here or where a name pointed.
func TestFetchCheckpointRefusesBadStreams(t *testing.T) {
	escape := filepath.Join(t.TempDir(), "escaped")
	for _, c := range []struct {
		name    string
		entries []tarEntry
		cut     int  // stop the stream after this many bytes (0: no cut)
		fail    bool // the fetcher fails after writing the stream
		noClose bool // no end-of-archive blocks
		extra   string
	}{
		{name: "dotdot", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/../x", "x"), trailerEntry(2, 1)}},
		{name: "dotdot first", entries: []tarEntry{regEntry("../"+ckBase, "x"), trailerEntry(1, 1)}},
		{name: "dotdot deep", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/../../../../escaped", "x"), trailerEntry(2, 1)}},
		{name: "absolute", entries: []tarEntry{dirEntry(ckBase), regEntry(escape, "x"), trailerEntry(2, 1)}},
		{name: "absolute first", entries: []tarEntry{regEntry("/"+ckBase, "x"), trailerEntry(1, 1)}},
		{name: "other base", entries: []tarEntry{regEntry("00000000000000000001-1", "x"), trailerEntry(1, 1)}},
		{name: "outside base", entries: []tarEntry{dirEntry(ckBase), regEntry("x", "x"), trailerEntry(2, 1)}},
		{name: "unclean", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"//x", "x"), trailerEntry(2, 1)}},
		{name: "dot", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/./x", "x"), trailerEntry(2, 1)}},
		{name: "backslash", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+`/..\x`, "x"), trailerEntry(2, 1)}},
		{name: "before its dir", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/sub/x", "x"), trailerEntry(2, 1)}},
		{name: "under a file", entries: []tarEntry{regEntry(ckBase, "x"), regEntry(ckBase+"/x", "x"), trailerEntry(2, 2)}},
		{name: "symlink", entries: []tarEntry{dirEntry(ckBase),
			{tar.Header{Typeflag: tar.TypeSymlink, Name: ckBase + "/l", Linkname: escape}, ""}, trailerEntry(2, 0)}},
		{name: "symlink base", entries: []tarEntry{
			{tar.Header{Typeflag: tar.TypeSymlink, Name: ckBase, Linkname: filepath.Dir(escape)}, ""}, trailerEntry(1, 0)}},
		{name: "hardlink", entries: []tarEntry{dirEntry(ckBase),
			{tar.Header{Typeflag: tar.TypeLink, Name: ckBase + "/l", Linkname: "/etc/passwd"}, ""}, trailerEntry(2, 0)}},
		{name: "device", entries: []tarEntry{dirEntry(ckBase),
			{tar.Header{Typeflag: tar.TypeChar, Name: ckBase + "/null", Devmajor: 1, Devminor: 3}, ""}, trailerEntry(2, 0)}},
		{name: "fifo", entries: []tarEntry{dirEntry(ckBase),
			{tar.Header{Typeflag: tar.TypeFifo, Name: ckBase + "/p"}, ""}, trailerEntry(2, 0)}},
		{name: "oversize", entries: []tarEntry{dirEntry(ckBase),
			{tar.Header{Typeflag: tar.TypeReg, Name: ckBase + "/big", Size: ckptMaxBytes + 1}, ""}}, noClose: true},
		{name: "oversize total", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/a", "a"),
			{tar.Header{Typeflag: tar.TypeReg, Name: ckBase + "/big", Size: ckptMaxBytes}, ""}}, noClose: true},
		{name: "duplicate", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/a", "a"), regEntry(ckBase+"/a", "b"), trailerEntry(3, 2)}},
		{name: "no trailer", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/a", "a")}},
		{name: "trailer short", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/a", "a"), trailerEntry(3, 2)}},
		{name: "trailer first", entries: []tarEntry{trailerEntry(0, 0), regEntry(ckBase, "a")}},
		{name: "empty", entries: []tarEntry{trailerEntry(0, 0)}},
		{name: "cut in a file", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/a", strings.Repeat("a", 4096)), trailerEntry(2, 4096)}, cut: 1536},
		{name: "fetcher fails", entries: []tarEntry{dirEntry(ckBase), regEntry(ckBase+"/a", "a"), trailerEntry(2, 1)}, fail: true},
		{name: "data after the end", entries: []tarEntry{regEntry(ckBase, "a"), trailerEntry(1, 1)}, extra: strings.Repeat("z", 2<<20)},
		{name: "not a tar", extra: "<html>hello</html>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newXferPair(t)
			p.fetcher.SetCheckpointFetcher(func(_ context.Context, _, _, _ string, w io.Writer) error {
				var buf bytes.Buffer
				tw := tar.NewWriter(&buf)
				for _, e := range c.entries {
					h := e.h
					if err := tw.WriteHeader(&h); err != nil {
						t.Fatal(err)
					}
					if _, err := io.WriteString(tw, e.body); err != nil {
						t.Fatal(err)
					}
				}
				if c.noClose {
					_ = tw.Flush()
				} else if err := tw.Close(); err != nil {
					t.Fatal(err)
				}
				b := buf.Bytes()
				if c.cut > 0 {
					b = b[:c.cut]
				}
				if _, err := w.Write(b); err != nil {
					return err
				}
				if _, err := io.WriteString(w, c.extra); err != nil {
					return err
				}
				if c.fail {
					return errors.New("connection reset")
				}
				return nil
			})
			parent := filepath.Dir(localPath(p.fetcher.dur.checkpointDir("d")))
			_, err := p.fetcher.dur.fetchCheckpoint(context.Background(), nil, "n2", "d", "/peer/ck/d/"+ckBase)
			if err == nil {
				t.Fatal("fetched")
			}
			t.Log(err)
			// Nothing left: the checkpoint root holds d's empty dir only.
			have, _ := readTree(t, parent)
			if want := map[string]string{".": "/", "d": "/"}; !equalTrees(have, want) {
				t.Errorf("left behind: %v", have)
			}
			if _, err := os.Lstat(escape); err == nil {
				t.Errorf("%s was written", escape)
			}
			if len(p.owned) != 0 {
				t.Errorf("handed to the session after a failure: %v", p.owned)
			}
		})
	}
}

// TestFetchCheckpointRefusesBadPaths: the path's base must be a
// checkpoint name (the peer checks the rest), the RDD a durable one here.
func TestFetchCheckpointRefusesBadPaths(t *testing.T) {
	p := newXferPair(t)
	for _, c := range []struct{ rdd, path string }{
		{"d", "/x/d/.."},
		{"d", "/x/d/" + ckBase + "/.."},
		{"d", "/x/d/../../etc"},
		{"d", "/x/d/" + ckBase + "/"},
		{"d", ".fetch-" + ckBase},
		{"m", "/x/m/" + ckBase},
		{"../d", "/x/d/" + ckBase},
	} {
		if _, err := p.fetcher.dur.fetchCheckpoint(context.Background(), nil, "n2", c.rdd, c.path); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s %s: %v, want ErrInvalid", c.rdd, c.path, err)
		}
	}
	if _, err := p.fetcher.dur.fetchCheckpoint(context.Background(), nil, "n1", "d", "/x/d/"+ckBase); !errors.Is(err, ErrInvalid) {
		t.Errorf("from this node itself: %v, want ErrInvalid", err)
	}
	if _, err := p.fetcher.dur.fetchCheckpoint(context.Background(), nil, "n2", "nope", "/x/nope/"+ckBase); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown rdd: %v, want ErrNotFound", err)
	}
}
