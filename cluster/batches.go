package cluster

import (
	"fmt"
	"sort"
)

// Batch states, as Livy names them. starting: spark-submit runs but the
// application has no id yet; running: it has one; the other three are
// final and never change again.
const (
	BatchStarting = "starting"
	BatchRunning  = "running"
	BatchSuccess  = "success"
	BatchDead     = "dead"
	BatchKilled   = "killed"
)

// MaxBatchRecords bounds the batch records the registry keeps: creating
// one more drops the oldest finished ones (Livy's
// livy.server.batch.retained-sessions does the same job). A create when
// every kept record is still live is refused.
const MaxBatchRecords = 1000

// Batch is a registry record of one Livy batch: a spark-submit run on
// one node. The driver's log stays on that node (batches package).
type Batch struct {
	ID        int64  `msgpack:"id" json:"id"`
	Name      string `msgpack:"name,omitempty" json:"name,omitempty"`
	Node      string `msgpack:"node" json:"node"`
	State     string `msgpack:"state" json:"state"`
	Reason    string `msgpack:"reason,omitempty" json:"reason,omitempty"`
	CreatedAt int64  `msgpack:"created_at" json:"created_at"`
	// UpdatedAt is the unix ms of the last state change, chosen by the
	// proposer.
	UpdatedAt  int64  `msgpack:"updated_at,omitempty" json:"updated_at,omitempty"`
	AppID      string `msgpack:"app_id,omitempty" json:"app_id,omitempty"`
	SparkUIURL string `msgpack:"spark_ui,omitempty" json:"spark_ui,omitempty"`
	ProxyUser  string `msgpack:"proxy_user,omitempty" json:"proxy_user,omitempty"`
	// Access, as for sessions (CreateSession).
	Principal   string   `msgpack:"owner,omitempty" json:"owner,omitempty"`
	ViewUsers   []string `msgpack:"view_users,omitempty" json:"view_users,omitempty"`
	ModifyUsers []string `msgpack:"modify_users,omitempty" json:"modify_users,omitempty"`
}

// Final reports whether the batch has ended (its state never changes
// again).
func (b *Batch) Final() bool {
	return b.State == BatchSuccess || b.State == BatchDead || b.State == BatchKilled
}

// CreateBatch allocates the next batch id for a batch placed on Node. The
// FSM answers the id. Ids are never reused (State.NextBatchID).
type CreateBatch struct {
	Name        string   `msgpack:"name,omitempty"`
	Node        string   `msgpack:"node"`
	CreatedAt   int64    `msgpack:"created_at"`
	ProxyUser   string   `msgpack:"proxy_user,omitempty"`
	Principal   string   `msgpack:"owner,omitempty"`
	ViewUsers   []string `msgpack:"view_users,omitempty"`
	ModifyUsers []string `msgpack:"modify_users,omitempty"`
}

// validate checks what the API checks: a node, a name by the session
// rule (ValidSessionName), bounded user lists.
func (b *CreateBatch) validate() error {
	if err := nonEmpty("batch node", b.Node); err != nil {
		return err
	}
	if b.Name != "" {
		if err := ValidSessionName(b.Name); err != nil {
			return err
		}
	}
	if len(b.ViewUsers)+len(b.ModifyUsers) > 256 || len(b.Principal) > 128 || len(b.ProxyUser) > 128 {
		return fmt.Errorf("batch principal, proxy user or user lists are too long")
	}
	return nil
}

// SetBatchState moves a batch to a new state; AppID and SparkUIURL, if
// set, are recorded with it. A batch in a final state refuses every
// change (ErrBatchFinished), so a late "running" never overwrites
// "killed".
type SetBatchState struct {
	ID         int64  `msgpack:"id"`
	State      string `msgpack:"state"`
	Reason     string `msgpack:"reason,omitempty"`
	AppID      string `msgpack:"app_id,omitempty"`
	SparkUIURL string `msgpack:"spark_ui,omitempty"`
	At         int64  `msgpack:"at"`
}

func (b *SetBatchState) validate() error {
	return first(nonNegative("batch id", b.ID),
		oneOf("batch state", b.State, BatchStarting, BatchRunning, BatchSuccess, BatchDead, BatchKilled),
		maxLen("batch app id", b.AppID, 256), maxLen("batch spark ui url", b.SparkUIURL, 1024),
		maxLen("batch reason", b.Reason, 4096))
}

func maxLen(field, v string, n int) error {
	if len(v) > n {
		return fmt.Errorf("%s is longer than %d bytes", field, n)
	}
	return nil
}

func (s *State) applyCreateBatch(b *CreateBatch, _ uint64) (any, error) {
	if m, ok := s.Nodes[b.Node]; !ok || m.Status != NodeUp {
		return nil, fmt.Errorf("%w: batch node %q is not an up member", ErrNodeNotFound, b.Node)
	}
	if b.Name != "" {
		for _, o := range s.Batches {
			if o.Name == b.Name {
				return nil, fmt.Errorf("%w: batch name %q is batch %d", ErrBatchExists, b.Name, o.ID)
			}
		}
	}
	if len(s.Batches) >= MaxBatchRecords {
		s.pruneBatches(MaxBatchRecords - 1)
		if len(s.Batches) >= MaxBatchRecords {
			return nil, fmt.Errorf("%w: the registry holds %d batches and none has finished", ErrBatchLimit, len(s.Batches))
		}
	}
	if s.Batches == nil {
		s.Batches = map[int64]*Batch{}
	}
	id := s.NextBatchID
	s.NextBatchID++
	s.Batches[id] = &Batch{ID: id, Name: b.Name, Node: b.Node, State: BatchStarting, CreatedAt: b.CreatedAt,
		UpdatedAt: b.CreatedAt, ProxyUser: b.ProxyUser, Principal: b.Principal, ViewUsers: b.ViewUsers, ModifyUsers: b.ModifyUsers}
	return id, nil
}

// pruneBatches drops the oldest finished batches until at most keep
// records are left (or none finished is left). Deterministic: by id.
func (s *State) pruneBatches(keep int) {
	ids := make([]int64, 0, len(s.Batches))
	for id, b := range s.Batches {
		if b.Final() {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if len(s.Batches) <= keep {
			return
		}
		delete(s.Batches, id)
	}
}

func (s *State) applySetBatchState(b *SetBatchState, _ uint64) (any, error) {
	rec, ok := s.Batches[b.ID]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrBatchNotFound, b.ID)
	}
	if rec.Final() {
		return nil, fmt.Errorf("%w: batch %d is %s", ErrBatchFinished, b.ID, rec.State)
	}
	rec.State, rec.Reason, rec.UpdatedAt = b.State, b.Reason, b.At
	if b.AppID != "" {
		rec.AppID = b.AppID
	}
	if b.SparkUIURL != "" {
		rec.SparkUIURL = b.SparkUIURL
	}
	return nil, nil
}

// loseBatches marks every batch of a node that has not finished dead: its
// driver ran on that node and went with it.
func (s *State) loseBatches(node, reason string, at int64) {
	for _, b := range s.Batches {
		if b.Node == node && !b.Final() {
			b.State, b.Reason = BatchDead, reason
			if at != 0 {
				b.UpdatedAt = at
			}
		}
	}
}

// checkBatches checks the batch records as apply keeps them.
func (s *State) checkBatches() error {
	if s.NextBatchID < 0 {
		return fmt.Errorf("negative next batch id %d", s.NextBatchID)
	}
	if len(s.Batches) > MaxBatchRecords {
		return fmt.Errorf("%d batch records, more than %d", len(s.Batches), MaxBatchRecords)
	}
	names := map[string]int64{}
	for id, b := range s.Batches {
		if b == nil || b.ID != id || id < 0 || id >= s.NextBatchID {
			return fmt.Errorf("batch record %d is missing, misfiled or never allocated", id)
		}
		if err := first(nonEmpty("batch node", b.Node),
			oneOf("batch state", b.State, BatchStarting, BatchRunning, BatchSuccess, BatchDead, BatchKilled)); err != nil {
			return fmt.Errorf("batch %d: %w", id, err)
		}
		if err := uniqueName(names, "batch", id, b.Name); err != nil {
			return err
		}
	}
	return nil
}

// sortedBatches lists batches by id.
func (s *State) sortedBatches() []Batch { return sortedCopies(s.Batches) }

// cloneBatches deep-copies the batch records into c.
func (s *State) cloneBatches(c *State) {
	c.NextBatchID = s.NextBatchID
	if s.Batches == nil {
		return
	}
	c.Batches = make(map[int64]*Batch, len(s.Batches))
	for k, v := range s.Batches {
		n := *v
		n.ViewUsers = append([]string(nil), v.ViewUsers...)
		n.ModifyUsers = append([]string(nil), v.ModifyUsers...)
		c.Batches[k] = &n
	}
}

// Batch returns the batch record with that id.
func (n *Node) Batch(id int64) (Batch, bool) {
	return readOne(n.fsm, func(s *State) (*Batch, bool) { p, ok := s.Batches[id]; return p, ok })
}

// Batches lists every batch record, by id.
func (n *Node) Batches() []Batch { return readAll(n.fsm, (*State).sortedBatches) }
