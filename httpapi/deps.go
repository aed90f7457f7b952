package httpapi

import (
	"context"
	"io"
	"time"

	"github.com/srdd/srdd/batches"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sessions"
)

// The layers below, as the HTTP front end sees them: small consumer-side
// interfaces (the rqlite pattern), satisfied by *kvstore.Store,
// *sessions.Manager, *batches.Manager and *cluster.Node (Cluster, in
// cluster.go). Routing, authentication and authorization are tested
// against in-memory fakes of them (fakes_test.go), without a JVM.

// KV is the shared-RDD store (kvstore.Store).
type KV interface {
	Limits() kvstore.Limits
	// ServesCopy: this node holds a copy of the RDD that may serve reads
	// of its keys (they are not forwarded to the owner).
	ServesCopy(name string) bool
	Create(req kvstore.CreateRequest) (kvstore.RDDInfo, error)
	Drop(name string) error
	List(ctx context.Context) []kvstore.RDDInfo
	Describe(ctx context.Context, name string) (kvstore.RDDInfo, error)
	GetManyWith(ctx context.Context, name string, keys []string, opts kvstore.ReadOptions) ([][]byte, error)
	SetManyWith(ctx context.Context, name string, items []kvstore.Item, opts kvstore.WriteOptions) (int, error)
	DeleteManyWith(ctx context.Context, name string, keys []string, opts kvstore.WriteOptions) (int, error)
	Scan(ctx context.Context, name string, req kvstore.ScanRequest) (kvstore.ScanResult, error)
	Count(ctx context.Context, name string) (int64, error)
	Load(ctx context.Context, name string, req kvstore.LoadRequest) (kvstore.LoadStatus, error)
	Save(ctx context.Context, name string, req kvstore.SaveRequest) (kvstore.SaveResult, error)
	Checkpoint(ctx context.Context, name string) (kvstore.CheckpointResult, error)
	ServeCheckpoint(rdd, path string, w io.Writer) error
}

// Sessions are the Livy sessions of this node (sessions.Manager).
type Sessions interface {
	Resolve(idOrName string) (int64, error)
	Create(req sessions.CreateRequest) (sessions.Info, error)
	Get(id int64) (sessions.Info, error)
	List() []sessions.Info
	Delete(id int64) error
	Log(id int64, from, size int) (lines []string, start, total int, err error)
	Submit(id int64, code, kind string) (sessions.Statement, error)
	Statements(id int64) ([]sessions.Statement, error)
	WaitStatement(ctx context.Context, id int64, sid int, wait time.Duration) (sessions.Statement, error)
	Cancel(id int64, sid int) (sessions.Statement, error)
	Complete(ctx context.Context, id int64, code, kind string, cursor int) ([]string, error)
}

// Batches are the Livy batches of this node (batches.Manager).
type Batches interface {
	Create(req batches.Request) (batches.View, error)
	Get(id int64) (batches.View, error)
	List(from, size int) ([]batches.View, int)
	Log(id int64, from *int, size int) (lines []string, start, total int, err error)
	Kill(id int64) error
}

// The concrete layers satisfy the interfaces.
var (
	_ KV       = (*kvstore.Store)(nil)
	_ Sessions = (*sessions.Manager)(nil)
	_ Batches  = (*batches.Manager)(nil)
	_ Cluster  = (*cluster.Node)(nil)
	_ Peers    = (*cluster.Node)(nil)
)
