// Package bridgetest is the fast test tier's interpreter: a fake PySpark
// driver, written in Go, that speaks the real framed protocol
// (sparkbridge/DESIGN.md) and obeys the real data rules (kvstore's
// validation, with the limits the node hands every interpreter in
// SRDD_DATA_RULES), but holds its shared RDDs in a map and starts no JVM.
//
// It runs as a child process, as the real interpreter does, so the node
// supervises, kills and restarts it through the same code: a binary that
// calls MaybeRun first thing in main (or TestMain) becomes the fake when
// started with sparkbridge.FakeInterpreterEnv=1. node.Config's
// FakeInterpreter starts sessions that way (docs/ARCHITECTURE.md
// invariant 8: tests not about Spark run on it).
//
// Served: ping, shutdown, rdd.create/drop/list, kv.get/set/delete/scan/
// count, kv.apply, rdd.checkpoint/restore (a JSON file instead of
// Parquet), path.gc/delete, stats, progress, cancel, complete,
// connect.start (an echoing gRPC server: connect.go) and connect.views. Not
// served (they need Spark): execute answers every statement with an
// error output, rdd.load and rdd.save answer an internal error.
package bridgetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sparkbridge"
	"github.com/vmihailenco/msgpack/v5"
)

// MaybeRun turns this process into the fake interpreter, and exits, when
// sparkbridge.FakeInterpreterEnv is "1"; otherwise it returns at once.
func MaybeRun() {
	if os.Getenv(sparkbridge.FakeInterpreterEnv) == "1" {
		os.Exit(Run(os.Args[1:], os.Stdout))
	}
}

// Run serves one node connection with the interpreter's command line
// (-m srdd_interpreter --socket PATH ...) and returns the exit code.
func Run(args []string, stdout io.Writer) int {
	var sock string
	tokenFD := false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--socket":
			if i+1 < len(args) {
				sock = args[i+1]
			}
		case "--token-fd":
			tokenFD = true
		}
	}
	if tokenFD {
		// Drain the capability pipe, as the real interpreter does.
		_, _ = io.ReadAll(os.NewFile(3, "token"))
	}
	if sock == "" {
		fmt.Fprintln(os.Stderr, "fake interpreter: --socket is required")
		return 2
	}
	limits := kvstore.DefaultLimits()
	if r := os.Getenv(sparkbridge.DataRulesEnv); r != "" {
		var rules kvstore.Rules
		if err := json.Unmarshal([]byte(r), &rules); err != nil {
			fmt.Fprintf(os.Stderr, "fake interpreter: bad %s: %v\n", sparkbridge.DataRulesEnv, err)
			return 2
		}
		limits.MaxKeyBytes, limits.MaxValueBytes, limits.MaxBatch = rules.MaxKeyBytes, rules.MaxValueBytes, rules.MaxBatch
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake interpreter: cannot listen:", err)
		return 2
	}
	defer ln.Close()
	fmt.Fprintf(stdout, "%s|%d|unix|%s\n", sparkbridge.HandshakeName, sparkbridge.ProtocolVersion, sock)
	nc, err := ln.Accept()
	if err != nil {
		return 2
	}
	s := &server{nc: nc, bw: bufio.NewWriter(nc), store: NewStore(limits)}
	s.send(map[string]any{"id": 0, "event": "ready",
		"data": map[string]any{"spark_version": "fake", "app_id": "fake-app", "master": "fake"}})
	fmt.Fprintln(os.Stderr, "fake interpreter: ready (no Spark; tests only)")
	return s.serve()
}

type server struct {
	nc    net.Conn
	wmu   sync.Mutex
	bw    *bufio.Writer
	store *Store
}

type request struct {
	ID   uint64             `msgpack:"id"`
	Op   string             `msgpack:"op"`
	Args msgpack.RawMessage `msgpack:"args"`
}

func (s *server) serve() int {
	br := bufio.NewReader(s.nc)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return 0 // the node is gone
		}
		n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
		if n > sparkbridge.MaxFrameSize {
			fmt.Fprintln(os.Stderr, "fake interpreter: frame too large")
			return 2
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			return 0
		}
		var r request
		if err := msgpack.Unmarshal(frame, &r); err != nil || r.ID == 0 {
			fmt.Fprintln(os.Stderr, "fake interpreter: dropping a bad frame")
			continue
		}
		if r.Op == "shutdown" {
			s.send(map[string]any{"id": r.ID, "ok": true, "result": map[string]any{}})
			return 0
		}
		result, err := s.store.Do(r.Op, r.Args)
		if err != nil {
			code := sparkbridge.CodeInternal
			if re, ok := err.(*sparkbridge.RemoteError); ok {
				code = re.Code
			}
			msg := err.Error()
			if re, ok := err.(*sparkbridge.RemoteError); ok {
				msg = re.Message
			}
			s.send(map[string]any{"id": r.ID, "ok": false, "error": map[string]any{"code": code, "message": msg}})
			continue
		}
		s.send(map[string]any{"id": r.ID, "ok": true, "result": result})
	}
}

func (s *server) send(m map[string]any) {
	b, err := msgpack.Marshal(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake interpreter: cannot encode:", err)
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var hdr [4]byte
	hdr[0], hdr[1], hdr[2], hdr[3] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
	_, _ = s.bw.Write(hdr[:])
	_, _ = s.bw.Write(b)
	_ = s.bw.Flush()
}

// Store is the fake's shared RDDs: what one interpreter holds.
type Store struct {
	mu     sync.Mutex
	limits kvstore.Limits
	rdds   map[string]*rdd
	count  int // statements run

	connect      *EchoServer // started by connect.start
	connectToken string
	views        atomic.Int64 // connect.views calls
}

type rdd struct {
	data    map[string][]byte
	applied uint64 // last log index applied (durable RDDs)
}

// NewStore returns an empty store that checks data by limits.
func NewStore(limits kvstore.Limits) *Store {
	return &Store{limits: limits, rdds: map[string]*rdd{}}
}

func bad(format string, a ...any) error {
	return &sparkbridge.RemoteError{Code: sparkbridge.CodeInvalid, Message: fmt.Sprintf(format, a...)}
}

func notFound(name string) error {
	return &sparkbridge.RemoteError{Code: sparkbridge.CodeRDDNotFound, Message: fmt.Sprintf("shared RDD %q does not exist", name)}
}

// args is the union of every op's arguments.
type args struct {
	Name    string   `msgpack:"name"`
	Keys    []string `msgpack:"keys"`
	Items   [][]any  `msgpack:"items"`
	Groups  []any    `msgpack:"groups"`
	Local   bool     `msgpack:"local"`
	Prefix  string   `msgpack:"prefix"`
	After   *string  `msgpack:"after"`
	Limit   *int     `msgpack:"limit"`
	Path    string   `msgpack:"path"`
	Dir     string   `msgpack:"dir"`
	Keep    []string `msgpack:"keep"`
	Node    string   `msgpack:"node"`
	Index   uint64   `msgpack:"index"`
	Details bool     `msgpack:"details"`
	Entries []entry  `msgpack:"entries"`
	Code    string   `msgpack:"code"`
	Token   string   `msgpack:"token"`
}

type entry struct {
	I uint64   `msgpack:"i"`
	D bool     `msgpack:"d"`
	K []string `msgpack:"k"`
	V [][]byte `msgpack:"v"`
	G []any    `msgpack:"g"`
}

// Do performs one op, as the interpreter's dispatch table does.
func (s *Store) Do(op string, raw msgpack.RawMessage) (any, error) {
	var a args
	if len(raw) > 0 {
		if err := msgpack.Unmarshal(raw, &a); err != nil {
			return nil, bad("malformed args of %s: %v", op, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case "ping", "cancel":
		return map[string]any{}, nil
	case "progress":
		return map[string]any{"progress": nil}, nil
	case "complete":
		return map[string]any{"candidates": []string{}}, nil
	case "execute":
		n := s.count
		s.count++
		return map[string]any{"status": "error", "execution_count": n, "ename": "FakeInterpreter",
			"evalue":    "this session runs the fake interpreter (tests only): statements need Spark",
			"traceback": []string{}}, nil
	case "stats":
		return s.stats(), nil
	case "rdd.create":
		if err := kvstore.ValidateName(a.Name); err != nil {
			return nil, bad("%v", err)
		}
		if _, ok := s.rdds[a.Name]; ok {
			return nil, &sparkbridge.RemoteError{Code: sparkbridge.CodeExists, Message: fmt.Sprintf("shared RDD %q already exists", a.Name)}
		}
		s.rdds[a.Name] = &rdd{data: map[string][]byte{}}
		return map[string]any{}, nil
	case "rdd.list":
		names := s.names()
		out := make([]map[string]any, 0, len(names))
		for _, n := range names {
			e := map[string]any{"name": n, "count": len(s.rdds[n].data)}
			if a.Details {
				e["stats"] = map[string]any{}
			}
			out = append(out, e)
		}
		return map[string]any{"rdds": out}, nil
	case "path.gc":
		return s.pathGC(a.Dir, a.Keep, a.Node)
	case "path.delete":
		p := localPath(a.Path)
		_, err := os.Stat(p)
		if err != nil {
			return map[string]any{"deleted": false}, nil
		}
		return map[string]any{"deleted": os.RemoveAll(p) == nil}, nil
	case "connect.start":
		return s.connectStart(a.Token)
	case "connect.views":
		s.views.Add(1)
		return map[string]any{"changed": 0}, nil
	case "rdd.load", "rdd.save":
		return nil, &sparkbridge.RemoteError{Code: sparkbridge.CodeInternal,
			Message: op + " needs Spark: this session runs the fake interpreter (tests only)"}
	}
	r, ok := s.rdds[a.Name]
	switch op {
	case "rdd.drop", "kv.get", "kv.set", "kv.delete", "kv.scan", "kv.count", "kv.apply", "rdd.checkpoint", "rdd.restore":
		if !ok {
			return nil, notFound(a.Name)
		}
	default:
		return nil, bad("unknown op %q", op)
	}
	switch op {
	case "rdd.drop":
		delete(s.rdds, a.Name)
		return map[string]any{}, nil
	case "kv.get":
		vals := make([]any, len(a.Keys))
		for i, k := range a.Keys {
			if v, ok := r.data[k]; ok {
				vals[i] = v
			}
		}
		out := map[string]any{"values": vals}
		if a.Local {
			out["cold"] = []int{}
		}
		return out, nil
	case "kv.set":
		return s.set(r, a)
	case "kv.delete":
		return s.del(r, a)
	case "kv.count":
		return map[string]any{"count": len(r.data)}, nil
	case "kv.scan":
		return scan(r, a), nil
	case "kv.apply":
		return s.apply(r, a.Entries)
	case "rdd.checkpoint":
		return checkpoint(r, a.Path, a.Index)
	default: // rdd.restore
		return restore(r, a.Path, a.Index)
	}
}

func (s *Store) names() []string { return slices.Sorted(maps.Keys(s.rdds)) }

func (s *Store) stats() map[string]any {
	rdds := []map[string]any{}
	for _, n := range s.names() {
		rdds = append(rdds, map[string]any{"name": n, "count": len(s.rdds[n].data)})
	}
	return map[string]any{"buckets": []float64{}, "rss": 0, "jvm": map[string]any{}, "cache": map[string]any{},
		"pending": 0, "rdds": rdds}
}

// stage checks one key and its JSON value by the data rules and returns
// the value as the interpreter stores it (compact JSON text).
func (s *Store) stage(key any, val any) (string, []byte, error) {
	k, ok := key.(string)
	if !ok {
		return "", nil, bad("key must be a string")
	}
	if err := s.limits.ValidateKey(k); err != nil {
		return "", nil, bad("%v", err)
	}
	v, ok := val.([]byte)
	if !ok {
		if str, isStr := val.(string); isStr {
			v = []byte(str)
		} else {
			return "", nil, bad("value of %q must be JSON text", k)
		}
	}
	if err := s.limits.ValidateValue(v); err != nil {
		return "", nil, bad("%v", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return "", nil, bad("value of %q is not JSON: %v", k, err)
	}
	return k, buf.Bytes(), nil
}

// splitGroups cuts xs into the groups of the given sizes (checkGroups).
func splitGroups[T any](xs []T, sizes []any) ([][]T, error) {
	groups, err := checkGroups(sizes, len(xs))
	if err != nil {
		return nil, err
	}
	out := make([][]T, len(groups))
	pos := 0
	for i, g := range groups {
		out[i] = xs[pos : pos+g]
		pos += g
	}
	return out, nil
}

// checkGroups is the interpreter's Rules.check_groups: non-negative
// integer sizes (not booleans) that add up to n.
func checkGroups(groups []any, n int) ([]int, error) {
	out := make([]int, 0, len(groups))
	sum := 0
	for _, g := range groups {
		// msgpack decodes a size as one of the sized integer types.
		var v int
		switch x := reflect.ValueOf(g); {
		case x.CanInt():
			v = int(x.Int())
		case x.CanUint():
			v = int(x.Uint())
		default:
			return nil, bad("groups must be sizes that add up to the number of items")
		}
		if v < 0 {
			return nil, bad("groups must be sizes that add up to the number of items")
		}
		sum += v
		out = append(out, v)
	}
	if sum != n {
		return nil, bad("groups must be sizes that add up to the number of items")
	}
	return out, nil
}

func (s *Store) set(r *rdd, a args) (any, error) {
	// write writes items, all or none.
	write := func(items [][]any) error {
		staged := map[string][]byte{}
		for _, it := range items {
			if len(it) != 2 {
				return bad("an item must be [key, value]")
			}
			k, v, err := s.stage(it[0], it[1])
			if err != nil {
				return err
			}
			staged[k] = v
		}
		for k, v := range staged {
			r.data[k] = v
		}
		return nil
	}
	if a.Groups == nil {
		if err := write(a.Items); err != nil {
			return nil, err
		}
		return map[string]any{"written": len(a.Items)}, nil
	}
	groups, err := splitGroups(a.Items, a.Groups)
	if err != nil {
		return nil, err
	}
	errs := make([]any, len(groups))
	written := 0
	for i, g := range groups {
		if err := write(g); err != nil {
			errs[i] = err.(*sparkbridge.RemoteError).Message
		} else {
			written += len(g)
		}
	}
	return map[string]any{"written": written, "errors": errs}, nil
}

func (s *Store) del(r *rdd, a args) (any, error) {
	drop := func(keys []string) int {
		n := 0
		for _, k := range keys {
			if _, ok := r.data[k]; ok {
				delete(r.data, k)
				n++
			}
		}
		return n
	}
	if a.Groups == nil {
		return map[string]any{"deleted": drop(a.Keys)}, nil
	}
	groups, err := splitGroups(a.Keys, a.Groups)
	if err != nil {
		return nil, err
	}
	counts := make([]int, len(groups))
	total := 0
	for i, g := range groups {
		counts[i] = drop(g)
		total += counts[i]
	}
	return map[string]any{"deleted": total, "counts": counts}, nil
}

func scan(r *rdd, a args) map[string]any {
	limit := 100
	if a.Limit != nil {
		limit = *a.Limit
	}
	keys := make([]string, 0, len(r.data))
	for k := range r.data {
		if strings.HasPrefix(k, a.Prefix) && (a.After == nil || k > *a.After) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := false
	if limit >= 0 && len(keys) > limit {
		keys, more = keys[:limit], true
	}
	items := make([][]any, len(keys))
	for i, k := range keys {
		items[i] = []any{k, r.data[k]}
	}
	return map[string]any{"items": items, "more": more}
}

// apply is durable.py's apply_entries: logged writes in log order, each
// entry at or below the last index applied skipped, a bad group reported
// and skipped (the same way on every replay).
func (s *Store) apply(r *rdd, entries []entry) (any, error) {
	results := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		groups, err := checkGroups(e.G, len(e.K))
		if err != nil {
			return nil, bad("log entry %d: malformed", e.I)
		}
		if e.I <= r.applied {
			results = append(results, map[string]any{"c": nil, "e": make([]any, len(groups))})
			continue
		}
		r.applied = e.I
		errs := make([]any, len(groups))
		if e.D {
			counts := make([]int, len(groups))
			pos := 0
			for i, g := range groups {
				for _, k := range e.K[pos : pos+g] {
					if _, ok := r.data[k]; ok {
						delete(r.data, k)
						counts[i]++
					}
				}
				pos += g
			}
			results = append(results, map[string]any{"c": counts, "e": errs})
			continue
		}
		if len(e.V) != len(e.K) {
			return nil, bad("log entry %d: %d values for %d keys", e.I, len(e.V), len(e.K))
		}
		pos := 0
		for i, g := range groups {
			staged := map[string][]byte{}
			for j := pos; j < pos+g; j++ {
				k, v, err := s.stage(e.K[j], e.V[j])
				if err != nil {
					errs[i] = err.(*sparkbridge.RemoteError).Message
					staged = nil
					break
				}
				staged[k] = v
			}
			for k, v := range staged {
				r.data[k] = v
			}
			pos += g
		}
		results = append(results, map[string]any{"c": nil, "e": errs})
	}
	return map[string]any{"results": results}, nil
}

// localPath strips file: from a checkpoint URI; the fake writes local
// files only.
func localPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "file://"); ok {
		return rest
	}
	return strings.TrimPrefix(p, "file:")
}

// ckFile is the fake's checkpoint: a directory (as Parquet's would be)
// holding one JSON file.
const ckFile = "fake-checkpoint.json"

type ckData struct {
	Index uint64            `json:"index"`
	Data  map[string]string `json:"data"`
}

func checkpoint(r *rdd, path string, index uint64) (any, error) {
	dir := localPath(path)
	d := ckData{Index: index, Data: make(map[string]string, len(r.data))}
	for k, v := range r.data {
		d.Data[k] = string(v)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ckFile), b, 0o600); err != nil {
		return nil, err
	}
	return map[string]any{"rows": len(r.data), "bytes": len(b), "path": path, "seconds": 0.0}, nil
}

func restore(r *rdd, path string, index uint64) (any, error) {
	b, err := os.ReadFile(filepath.Join(localPath(path), ckFile))
	if err != nil {
		return nil, fmt.Errorf("cannot load checkpoint %s: %w", path, err)
	}
	var d ckData
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("cannot load checkpoint %s: %w", path, err)
	}
	r.data = make(map[string][]byte, len(d.Data))
	for k, v := range d.Data {
		r.data[k] = []byte(v)
	}
	r.applied = index
	return map[string]any{"rows": len(r.data), "seconds": 0.0}, nil
}

func (s *Store) pathGC(dir string, keep []string, node string) (any, error) {
	d := filepath.Clean(localPath(dir))
	kept := map[string]bool{}
	for _, k := range keep {
		kept[filepath.Clean(localPath(k))] = true
	}
	ents, err := os.ReadDir(d)
	if err != nil {
		return map[string]any{"deleted": 0}, nil
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(d, e.Name())
		if parts := strings.SplitN(e.Name(), "-", 3); node != "" && (len(parts) != 3 || parts[2] != node) {
			continue // another node's (INDEX-MILLIS-NODE)
		}
		if !kept[p] && os.RemoveAll(p) == nil {
			n++
		}
	}
	return map[string]any{"deleted": n}, nil
}

// connectStart starts the fake Spark Connect once, as connect.py does.
func (s *Store) connectStart(token string) (any, error) {
	if len(token) < 16 {
		return nil, bad("the Spark Connect token must be at least 16 characters")
	}
	if s.connect == nil {
		e, err := StartEcho(token, &s.views)
		if err != nil {
			return nil, err
		}
		s.connect, s.connectToken = e, token
	} else if token != s.connectToken {
		return nil, bad("Spark Connect already runs in this session with another token")
	}
	_, port, _ := net.SplitHostPort(s.connect.Addr)
	n, _ := strconv.Atoi(port)
	return map[string]any{"port": n}, nil
}
