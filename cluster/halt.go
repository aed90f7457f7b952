package cluster

// Halted reports where and why this node stopped applying the registry
// log (fsm.Apply), or nil while it applies. A halted node stays up and
// keeps its Raft role, but is not ready: it serves no write and no
// fresh read, since its registry stops at the entry before the halt.
func (n *Node) Halted() *Halt {
	if h := n.fsm.halted.Load(); h != nil {
		c := *h
		return &c
	}
	return nil
}

// haltErr is ErrHalted with where and why, or nil.
func (n *Node) haltErr() error {
	if h := n.fsm.halted.Load(); h != nil {
		return h.err()
	}
	return nil
}
