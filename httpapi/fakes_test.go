package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/srdd/srdd/batches"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sessions"
)

// In-memory fakes of the layers below httpapi (deps.go, Cluster), so
// routing, authentication and authorization run in milliseconds without
// Raft, interpreters or a JVM (the rqlite pattern: http/service_test.go
// against a mock Store). They hold one node "n1" with session 1 (named
// "s1", owned by alice, viewer vic, modifier max), its RDD "r1" with
// key "k", and batch 1 with the same principal and ACLs.

type fakeKV struct{}

func (fakeKV) Limits() kvstore.Limits { return kvstore.DefaultLimits() }
func (fakeKV) ServesCopy(string) bool { return false }
func (fakeKV) Create(req kvstore.CreateRequest) (kvstore.RDDInfo, error) {
	return kvstore.RDDInfo{Name: req.Name}, nil
}
func (fakeKV) Drop(string) error { return nil }
func (fakeKV) List(context.Context) []kvstore.RDDInfo {
	return []kvstore.RDDInfo{{Name: "r1", Node: "n1"}}
}
func (fakeKV) Describe(_ context.Context, name string) (kvstore.RDDInfo, error) {
	return kvstore.RDDInfo{Name: name}, nil
}
func (fakeKV) GetManyWith(_ context.Context, _ string, keys []string, _ kvstore.ReadOptions) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if k == "k" {
			out[i] = []byte(`1`)
		}
	}
	return out, nil
}
func (fakeKV) SetManyWith(_ context.Context, _ string, items []kvstore.Item, _ kvstore.WriteOptions) (int, error) {
	return len(items), nil
}
func (fakeKV) DeleteManyWith(_ context.Context, _ string, keys []string, _ kvstore.WriteOptions) (int, error) {
	return len(keys), nil
}
func (fakeKV) Scan(context.Context, string, kvstore.ScanRequest) (kvstore.ScanResult, error) {
	return kvstore.ScanResult{}, nil
}
func (fakeKV) Count(context.Context, string) (int64, error) { return 1, nil }
func (fakeKV) Load(context.Context, string, kvstore.LoadRequest) (kvstore.LoadStatus, error) {
	return kvstore.LoadStatus{}, nil
}
func (fakeKV) Save(context.Context, string, kvstore.SaveRequest) (kvstore.SaveResult, error) {
	return kvstore.SaveResult{}, nil
}
func (fakeKV) Checkpoint(context.Context, string) (kvstore.CheckpointResult, error) {
	return kvstore.CheckpointResult{}, nil
}
func (fakeKV) ServeCheckpoint(rdd, path string, w io.Writer) error {
	if rdd != "d" {
		return fmt.Errorf("%w: shared rdd %q", kvstore.ErrNotFound, rdd)
	}
	if _, err := io.WriteString(w, "tar of "+path); err != nil {
		return err
	}
	if path == "breaks" {
		return errors.New("disk read error") // after the first bytes
	}
	return nil
}

type fakeSessions struct{}

func (fakeSessions) Resolve(ref string) (int64, error) {
	if ref == "1" || ref == "s1" {
		return 1, nil
	}
	return 0, fmt.Errorf("%w: %s", sessions.ErrNotFound, strconv.Quote(ref))
}
func (fakeSessions) Create(sessions.CreateRequest) (sessions.Info, error) {
	return sessions.Info{ID: 2}, nil
}
func (fakeSessions) Get(id int64) (sessions.Info, error)             { return sessions.Info{ID: id}, nil }
func (fakeSessions) List() []sessions.Info                           { return []sessions.Info{{ID: 1}} }
func (fakeSessions) Delete(int64) error                              { return nil }
func (fakeSessions) Log(int64, int, int) ([]string, int, int, error) { return nil, 0, 0, nil }
func (fakeSessions) Submit(int64, string, string) (sessions.Statement, error) {
	return sessions.Statement{}, nil
}
func (fakeSessions) Statements(int64) ([]sessions.Statement, error) { return nil, nil }
func (fakeSessions) WaitStatement(context.Context, int64, int, time.Duration) (sessions.Statement, error) {
	return sessions.Statement{}, nil
}
func (fakeSessions) Cancel(int64, int) (sessions.Statement, error) { return sessions.Statement{}, nil }
func (fakeSessions) Complete(context.Context, int64, string, string, int) ([]string, error) {
	return nil, nil
}

type fakeBatches struct{}

func (fakeBatches) Create(batches.Request) (batches.View, error) { return batches.View{ID: 2}, nil }
func (fakeBatches) Get(id int64) (batches.View, error)           { return batches.View{ID: id}, nil }
func (fakeBatches) List(int, int) ([]batches.View, int)          { return nil, 0 }
func (fakeBatches) Log(int64, *int, int) ([]string, int, int, error) {
	return nil, 0, 0, nil
}
func (fakeBatches) Kill(int64) error { return nil }

// fakeCluster is a registry of one node, n1, which leads.
type fakeCluster struct{}

var (
	fakeSession = cluster.Session{ID: 1, Name: "s1", Node: "n1", Status: cluster.SessionActive,
		Principal: "alice", ViewUsers: []string{"vic"}, ModifyUsers: []string{"max"}}
	fakeBatch = cluster.Batch{ID: 1, Node: "n1", Principal: "alice", ViewUsers: []string{"vic"}, ModifyUsers: []string{"max"}}
)

func (fakeCluster) ID() string                                    { return "n1" }
func (fakeCluster) IsLeader() bool                                { return true }
func (fakeCluster) HasLeader() bool                               { return true }
func (fakeCluster) ClusterStatus() cluster.Status                 { return cluster.Status{Node: "n1", Leader: "n1"} }
func (fakeCluster) ServeApply([]byte) []byte                      { return []byte{0x80} }
func (fakeCluster) Join(string, string, string, bool, bool) error { return nil }
func (fakeCluster) Admit(string, bool, string) error              { return nil }
func (fakeCluster) Remove(string) error                           { return nil }
func (fakeCluster) LeaderHTTP() (string, error)                   { return "127.0.0.1:1", nil }
func (fakeCluster) Placement() []string                           { return []string{"n1"} }
func (fakeCluster) ServeSilent() ([]byte, error)                  { return []byte("[]"), nil }
func (fakeCluster) VerifyLeader() error                           { return nil }
func (fakeCluster) CatchUp() error                                { return nil }
func (fakeCluster) ServeIndex() ([]byte, error)                   { return []byte("1"), nil }
func (fakeCluster) Member(id string) (cluster.Member, bool) {
	return cluster.Member{ID: id, HTTPAddr: "127.0.0.1:1", Status: cluster.NodeUp}, id == "n1"
}
func (fakeCluster) RDD(name string) (cluster.RDD, bool) {
	return cluster.RDD{Name: "r1", SessionID: 1}, name == "r1"
}
func (fakeCluster) Session(id int64) (cluster.Session, bool) { return fakeSession, id == 1 }
func (fakeCluster) SessionByName(name string) (cluster.Session, bool) {
	return fakeSession, name == "s1"
}
func (fakeCluster) Batch(id int64) (cluster.Batch, bool) { return fakeBatch, id == 1 }
