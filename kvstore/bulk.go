package kvstore

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/srdd/srdd/internal/fileroot"
	"github.com/vmihailenco/msgpack/v5"
)

// Bulk file formats (README, "Bulk data").
const (
	FormatJSONL   = "jsonl"
	FormatCSV     = "csv"
	FormatParquet = "parquet"
)

// Load states.
const (
	LoadRunning = "running"
	LoadDone    = "done"
	LoadFailed  = "failed"
)

// LoadStatus is a bulk load's progress or outcome.
type LoadStatus struct {
	State      string  `json:"state" msgpack:"state"`
	Path       string  `json:"path" msgpack:"path"`
	Format     string  `json:"format" msgpack:"format"`
	Mode       string  `json:"mode" msgpack:"mode"`
	Rows       int64   `json:"rows" msgpack:"rows"`
	Percent    float64 `json:"percent" msgpack:"percent"`
	RowsPerSec float64 `json:"rows_per_sec" msgpack:"rows_per_sec"`
	Seconds    float64 `json:"seconds" msgpack:"seconds"`
	Error      string  `json:"error,omitempty" msgpack:"error"`
}

// LoadRequest asks to load a file the owner's Spark can read: a path in
// one of the owner's file roots (relative: in the first), or, with
// --allow-remote-uris, any URI Spark understands.
type LoadRequest struct {
	Path   string `json:"path"`
	Format string `json:"format"` // jsonl (default), csv, parquet
	// Mode "merge" (default) overwrites existing keys with loaded rows;
	// "replace" drops the data that was there before.
	Mode        string `json:"mode"`
	KeyColumn   string `json:"key_column"`   // csv/parquet; default "key"
	ValueColumn string `json:"value_column"` // csv/parquet; default "value"
}

// SaveRequest asks to write the data to a path (Spark writes a directory
// of part files), with the same rules as a load's; Overwrite replaces a
// path inside a root, never a root itself.
type SaveRequest struct {
	Path      string `json:"path"`
	Format    string `json:"format"`
	Overwrite bool   `json:"overwrite"`
}

// SaveResult reports a finished save.
type SaveResult struct {
	Rows    int64   `json:"rows" msgpack:"rows"`
	Path    string  `json:"path" msgpack:"path"`
	Format  string  `json:"format" msgpack:"format"`
	Seconds float64 `json:"seconds" msgpack:"seconds"`
}

// ScanRequest selects keys by prefix, after a cursor key, up to a limit.
type ScanRequest struct {
	Prefix string
	After  string // "" starts at the first key
	Limit  int    // 1 .. MaxBatch; 0 means 100
}

// ScanResult is one page of a scan, in key order.
type ScanResult struct {
	Items []Item
	More  bool // keys follow the last one returned
}

func checkFormat(f *string) error {
	switch *f {
	case "":
		*f = FormatJSONL
	case FormatJSONL, FormatCSV, FormatParquet:
	default:
		return fmt.Errorf("%w: format %q is unknown; use %q, %q or %q", ErrInvalid, *f, FormatJSONL, FormatCSV, FormatParquet)
	}
	return nil
}

func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: path must not be empty", ErrInvalid)
	}
	if !utf8.ValidString(p) || len(p) > 4096 {
		return fmt.Errorf("%w: path must be UTF-8 of at most 4096 bytes", ErrInvalid)
	}
	return nil
}

// Scan returns keys that start with a prefix, in key order, one page at a
// time: pass the last key of a page as After to get the next.
func (s *Store) Scan(ctx context.Context, name string, req ScanRequest) (ScanResult, error) {
	if req.Limit == 0 {
		req.Limit = 100
	}
	if req.Limit < 0 || req.Limit > s.limits.MaxBatch {
		return ScanResult{}, fmt.Errorf("%w: limit must be from 1 to %d", ErrInvalid, s.limits.MaxBatch)
	}
	if len(req.Prefix) > s.limits.MaxKeyBytes || !utf8.ValidString(req.Prefix) {
		return ScanResult{}, fmt.Errorf("%w: prefix must be UTF-8 of at most %d bytes", ErrInvalid, s.limits.MaxKeyBytes)
	}
	args := map[string]any{"name": name, "prefix": req.Prefix, "limit": req.Limit}
	if req.After != "" {
		if err := s.limits.ValidateKey(req.After); err != nil {
			return ScanResult{}, fmt.Errorf("%w: bad cursor", ErrInvalid)
		}
		args["after"] = req.After
	}
	if err := s.ReadGate(ctx, name, ""); err != nil {
		return ScanResult{}, err
	}
	var res struct {
		Items []scanItem `msgpack:"items"`
		More  bool       `msgpack:"more"`
	}
	if err := s.call(ctx, name, "kv.scan", args, &res); err != nil {
		return ScanResult{}, err
	}
	out := ScanResult{Items: make([]Item, len(res.Items)), More: res.More}
	for i, it := range res.Items {
		out.Items[i] = Item(it)
	}
	return out, nil
}

// scanItem decodes a [key, value] pair.
type scanItem struct {
	Key   string
	Value []byte
}

var _ msgpack.CustomDecoder = (*scanItem)(nil)

func (it *scanItem) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("scan item has %d fields, want 2", n)
	}
	if it.Key, err = dec.DecodeString(); err != nil {
		return err
	}
	it.Value, err = dec.DecodeBytes()
	return err
}

// Count returns the exact number of keys.
func (s *Store) Count(ctx context.Context, name string) (int64, error) {
	if err := s.ReadGate(ctx, name, ""); err != nil {
		return 0, err
	}
	var res struct {
		Count int64 `msgpack:"count"`
	}
	err := s.call(ctx, name, "kv.count", map[string]any{"name": name}, &res)
	return res.Count, err
}

// Load starts a bulk load in the owner and returns at once; progress shows
// in Describe (state "loading", Load). ErrBusy if a load is running.
func (s *Store) Load(ctx context.Context, name string, req LoadRequest) (LoadStatus, error) {
	if err := checkPath(req.Path); err != nil {
		return LoadStatus{}, err
	}
	if err := checkFormat(&req.Format); err != nil {
		return LoadStatus{}, err
	}
	switch req.Mode {
	case "":
		req.Mode = "merge"
	case "merge", "replace":
	default:
		return LoadStatus{}, fmt.Errorf("%w: mode %q is unknown; use \"merge\" or \"replace\"", ErrInvalid, req.Mode)
	}
	var err error
	if req.Path, err = s.files.URI(req.Path); err != nil {
		return LoadStatus{}, fmt.Errorf("cannot load: %w", err)
	}
	args := map[string]any{"name": name, "path": req.Path, "format": req.Format, "mode": req.Mode}
	if req.KeyColumn != "" {
		args["key_column"] = req.KeyColumn
	}
	if req.ValueColumn != "" {
		args["value_column"] = req.ValueColumn
	}
	if err := s.ReadGate(ctx, name, ""); err != nil {
		return LoadStatus{}, err
	}
	b := s.writer(name)
	b.loading(name, true) // a durable RDD is checkpointed when the load ends
	var st LoadStatus
	err = s.call(ctx, name, "rdd.load", args, &st)
	if err != nil {
		b.loading(name, false)
	}
	return st, err
}

// Save writes the current data (pending writes included) and returns when
// it is written.
func (s *Store) Save(ctx context.Context, name string, req SaveRequest) (SaveResult, error) {
	if err := checkPath(req.Path); err != nil {
		return SaveResult{}, err
	}
	if err := checkFormat(&req.Format); err != nil {
		return SaveResult{}, err
	}
	var err error
	if req.Path, err = s.files.URI(req.Path); err != nil {
		return SaveResult{}, fmt.Errorf("cannot save: %w", err)
	}
	if _, p, local := fileroot.Split(req.Path); local && req.Overwrite {
		if _, err := s.files.Replaceable(p); err != nil {
			return SaveResult{}, fmt.Errorf("cannot save: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	if err := s.ReadGate(ctx, name, ""); err != nil {
		return SaveResult{}, err
	}
	var res SaveResult
	err = s.callWithin(ctx, saveTimeout, name, "rdd.save",
		map[string]any{"name": name, "path": req.Path, "format": req.Format, "overwrite": req.Overwrite}, &res)
	return res, err
}
