// Package srddclient is the Go SDK for srdd's shared-RDD API.
package srddclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Client talks to one srdd node over HTTP.
type Client struct {
	bases []string     // one per node, in the order given
	good  atomic.Int32 // index of the node that last answered
	hc    *http.Client
	token string // sent as a bearer token if set
}

// Options configure a client beyond its addresses.
type Options struct {
	// Token is sent as "Authorization: Bearer TOKEN" (srdd auth add).
	Token string
	// CACert is a PEM file of the CA that signed the nodes' certificates;
	// with it, addresses without a scheme use https.
	CACert string
}

// NewWithOptions is New with a token and a CA.
func NewWithOptions(addr string, o Options) (*Client, error) {
	scheme := "http://"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("cannot read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use CA certificate %s: no PEM certificate in it", o.CACert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		scheme = "https://"
	}
	c := newClient(addr, scheme)
	c.hc.Transport = tr
	c.token = o.Token
	return c, nil
}

// New returns a client for addr ("127.0.0.1:8998" or "http://host:port").
//
// addr may list several nodes separated by commas: a call goes to the node
// that answered last and moves on to the next only when a node cannot be
// reached at all (its connection is refused or times out), so a request
// that may have reached a node is never sent twice. Any node serves any
// call: the cluster forwards it to where it belongs.
func New(addr string) *Client { return newClient(addr, "http://") }

func newClient(addr, scheme string) *Client {
	c := &Client{hc: &http.Client{Timeout: 5 * time.Minute}}
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = scheme + a
		}
		c.bases = append(c.bases, strings.TrimSuffix(a, "/"))
	}
	return c
}

// unreachable reports whether err means the request never reached the node.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Error is an error answered by the server.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// RDD describes a shared RDD.
type RDD struct {
	Name      string `json:"name"`
	Session   int64  `json:"session"`
	Node      string `json:"node"`
	Mode      string `json:"mode"`
	State     string `json:"state"`
	Keys      *int64 `json:"keys"`
	CreatedAt int64  `json:"created_at"`
	Message   string `json:"message,omitempty"`
	// Load is the running bulk load's progress, or the last one's outcome.
	Load *LoadStatus `json:"load,omitempty"`
	// Engine is the owner's KV engine state (partitions, pending writes...).
	Engine map[string]any `json:"engine,omitempty"`
	// LastError says why a recovering durable RDD's last try failed, and
	// NextAttemptAt (unix ms) when the next one may start.
	LastError     string `json:"last_error,omitempty"`
	NextAttemptAt int64  `json:"next_attempt_at,omitempty"`
	// Replicas is the number of copies wanted; Copies are the ones that
	// exist, the owner's first; AtRisk says why one lost machine would
	// lose acknowledged writes ("one copy on node-local storage").
	Replicas int       `json:"replicas,omitempty"`
	Copies   []RDDCopy `json:"copies,omitempty"`
	// LastWrite is the log index of a durable RDD's last write: a copy's
	// lag is LastWrite - AppliedIndex.
	LastWrite       uint64 `json:"last_write_index,omitempty"`
	UnderReplicated bool   `json:"under_replicated,omitempty"`
	AtRisk          string `json:"at_risk,omitempty"`
}

// RDDCopy is one copy of a shared RDD: a session that holds its data, and
// the write-log index it applied when the node answering knows it.
type RDDCopy struct {
	Node         string `json:"node"`
	Session      int64  `json:"session"`
	Role         string `json:"role,omitempty"` // "owner" or "copy"
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	// CheckpointIndex is the log index of the copy's last checkpoint.
	CheckpointIndex uint64 `json:"checkpoint_index,omitempty"`
}

// LoadStatus is a bulk load's progress or outcome.
type LoadStatus struct {
	State      string  `json:"state"` // running, done, failed
	Path       string  `json:"path"`
	Format     string  `json:"format"`
	Mode       string  `json:"mode"`
	Rows       int64   `json:"rows"`
	Percent    float64 `json:"percent"`
	RowsPerSec float64 `json:"rows_per_sec"`
	Seconds    float64 `json:"seconds"`
	Error      string  `json:"error,omitempty"`
}

// LoadOptions are the optional parts of a load request.
type LoadOptions struct {
	Format      string `json:"format,omitempty"` // jsonl (default), csv, parquet
	Mode        string `json:"mode,omitempty"`   // merge (default) or replace
	KeyColumn   string `json:"key_column,omitempty"`
	ValueColumn string `json:"value_column,omitempty"`
}

// SaveResult reports a finished save.
type SaveResult struct {
	Rows    int64   `json:"rows"`
	Path    string  `json:"path"`
	Format  string  `json:"format"`
	Seconds float64 `json:"seconds"`
}

// KV is one key and its JSON value.
type KV struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// ScanPage is one page of a prefix scan; Cursor is empty on the last page.
type ScanPage struct {
	Items  []KV   `json:"items"`
	Cursor string `json:"cursor"`
}

// Do sends one request; body may be nil, raw bytes or a value to encode.
func (c *Client) Do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(enc)
	}
	if len(c.bases) == 0 {
		return errors.New("srdd client: no node address")
	}
	var payload []byte
	if rd != nil {
		payload, _ = io.ReadAll(rd)
	}
	var resp *http.Response
	var err error
	start := int(c.good.Load())
	for i := 0; i < len(c.bases); i++ {
		at := (start + i) % len(c.bases)
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, method, c.bases[at]+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if rd != nil || method != http.MethodGet {
			// srdd answers 415 to a mutating call without it (CSRF).
			req.Header.Set("Content-Type", "application/json")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if resp, err = c.hc.Do(req); err == nil {
			c.good.Store(int32(at))
			break
		}
		if !unreachable(err) {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("no node of %v could be reached: %w", c.bases, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil && len(data) > 0 {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = append((*raw)[:0], data...)
			return nil
		}
		return json.Unmarshal(data, out)
	}
	return nil
}

func rddPath(name string) string { return "/v1/rdds/" + url.PathEscape(name) }

// ListRDDs lists shared RDDs.
func (c *Client) ListRDDs(ctx context.Context) ([]RDD, error) {
	var out struct {
		RDDs []RDD `json:"rdds"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/rdds", nil, &out)
	return out.RDDs, err
}

// CreateRDD creates a shared RDD, in session (id or name) if not empty.
func (c *Client) CreateRDD(ctx context.Context, name, session string) (RDD, error) {
	return c.CreateRDDMode(ctx, name, session, "")
}

// CreateRDDMode creates a shared RDD in a mode: "durable", "memory" or ""
// (the server's default, durable).
func (c *Client) CreateRDDMode(ctx context.Context, name, session, mode string) (RDD, error) {
	return c.CreateRDDWith(ctx, name, CreateRDDOptions{Session: session, Mode: mode})
}

// CreateRDDOptions are a create's optional fields; zero values are the
// server's defaults.
type CreateRDDOptions struct {
	Session string // an id or name; "": the node's default session
	Mode    string // "durable", "memory" or "" (durable)
	// Replicas is the number of copies wanted, 1 up to the cluster's node
	// count; 0: the default (2 for a durable RDD on 2 or more nodes, else 1).
	Replicas int
}

// CreateRDDWith creates a shared RDD with options.
func (c *Client) CreateRDDWith(ctx context.Context, name string, o CreateRDDOptions) (RDD, error) {
	req := map[string]any{"name": name}
	if o.Session != "" {
		req["session"] = o.Session
	}
	if o.Mode != "" {
		req["mode"] = o.Mode
	}
	if o.Replicas != 0 {
		req["replicas"] = o.Replicas
	}
	var out RDD
	err := c.Do(ctx, http.MethodPost, "/v1/rdds", req, &out)
	return out, err
}

// DescribeRDD describes one shared RDD.
func (c *Client) DescribeRDD(ctx context.Context, name string) (RDD, error) {
	var out RDD
	err := c.Do(ctx, http.MethodGet, rddPath(name), nil, &out)
	return out, err
}

// DropRDD drops a shared RDD.
func (c *Client) DropRDD(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, rddPath(name), nil, nil)
}

// Get returns the JSON value of a key.
func (c *Client) Get(ctx context.Context, rdd, key string) (json.RawMessage, error) {
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	err := c.Do(ctx, http.MethodGet, rddPath(rdd)+"/keys/"+url.PathEscape(key), nil, &out)
	return out.Value, err
}

// Set writes a key; value is JSON text.
func (c *Client) Set(ctx context.Context, rdd, key string, value json.RawMessage) error {
	return c.Do(ctx, http.MethodPut, rddPath(rdd)+"/keys/"+url.PathEscape(key), []byte(value), nil)
}

// Delete deletes a key.
func (c *Client) Delete(ctx context.Context, rdd, key string) error {
	return c.Do(ctx, http.MethodDelete, rddPath(rdd)+"/keys/"+url.PathEscape(key), nil, nil)
}

// GetMany returns the values of the keys that exist and the missing keys.
func (c *Client) GetMany(ctx context.Context, rdd string, keys []string) (map[string]json.RawMessage, []string, error) {
	var out struct {
		Values  map[string]json.RawMessage `json:"values"`
		Missing []string                   `json:"missing"`
	}
	err := c.Do(ctx, http.MethodPost, rddPath(rdd)+"/get", map[string]any{"keys": keys}, &out)
	return out.Values, out.Missing, err
}

// SetMany writes all items or none.
func (c *Client) SetMany(ctx context.Context, rdd string, items map[string]json.RawMessage) (int, error) {
	var out struct {
		Written int `json:"written"`
	}
	err := c.Do(ctx, http.MethodPost, rddPath(rdd)+"/set", map[string]any{"items": items}, &out)
	return out.Written, err
}

// DeleteMany deletes keys and returns how many existed.
func (c *Client) DeleteMany(ctx context.Context, rdd string, keys []string) (int, error) {
	var out struct {
		Deleted int `json:"deleted"`
	}
	err := c.Do(ctx, http.MethodPost, rddPath(rdd)+"/delete", map[string]any{"keys": keys}, &out)
	return out.Deleted, err
}

// Count returns the exact number of keys.
func (c *Client) Count(ctx context.Context, rdd string) (int64, error) {
	var out struct {
		Count int64 `json:"count"`
	}
	err := c.Do(ctx, http.MethodGet, rddPath(rdd)+"/count", nil, &out)
	return out.Count, err
}

// Scan returns one page of keys starting with prefix, in key order; pass
// the page's Cursor to get the next (empty cursor: the first page).
func (c *Client) Scan(ctx context.Context, rdd, prefix, cursor string, limit int) (ScanPage, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := rddPath(rdd) + "/scan"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ScanPage
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Load starts loading a file the node can read into rdd; it returns at
// once. Watch DescribeRDD's Load (or use WaitLoad) for progress.
func (c *Client) Load(ctx context.Context, rdd, path string, opts LoadOptions) (LoadStatus, error) {
	body := map[string]any{"path": path}
	b, _ := json.Marshal(opts)
	_ = json.Unmarshal(b, &body)
	body["path"] = path
	var out LoadStatus
	err := c.Do(ctx, http.MethodPost, rddPath(rdd)+"/load", body, &out)
	return out, err
}

// WaitLoad polls until the RDD's load is no longer running, calling
// progress (if not nil) with each status seen; it returns the final one.
func (c *Client) WaitLoad(ctx context.Context, rdd string, every time.Duration, progress func(LoadStatus)) (LoadStatus, error) {
	for {
		r, err := c.DescribeRDD(ctx, rdd)
		if err != nil {
			return LoadStatus{}, err
		}
		if r.Load == nil {
			return LoadStatus{}, fmt.Errorf("shared rdd %q has no load", rdd)
		}
		if progress != nil {
			progress(*r.Load)
		}
		if r.Load.State != "running" {
			if r.Load.State == "failed" {
				return *r.Load, fmt.Errorf("load of %s failed: %s", r.Load.Path, r.Load.Error)
			}
			return *r.Load, nil
		}
		select {
		case <-ctx.Done():
			return *r.Load, ctx.Err()
		case <-time.After(every):
		}
	}
}

// Save writes rdd's data to path (a directory of part files) as format
// (jsonl, csv or parquet), replacing it if overwrite.
func (c *Client) Save(ctx context.Context, rdd, path, format string, overwrite bool) (SaveResult, error) {
	var out SaveResult
	err := c.Do(ctx, http.MethodPost, rddPath(rdd)+"/save",
		map[string]any{"path": path, "format": format, "overwrite": overwrite}, &out)
	return out, err
}
