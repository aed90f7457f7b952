package kvstore

// CheckpointOwner gives an RDD's checkpoint directory (a URI under the
// checkpoint location) to the interpreter that is about to write, read or
// delete it. With a uid per session (--interpreter-uids) the node makes
// it the owning session's, 0700: another session's code can neither list
// nor read it, and a rebuild in a new session gets it handed over
// (docs/ARCHITECTURE.md, "Sessions hold no secret").
type CheckpointOwner func(dir string, it Interpreter) error

// SetCheckpointOwner sets it; call it before StartDurable.
func (s *Store) SetCheckpointOwner(f CheckpointOwner) { s.dur.ckptOwner = f }

// ownCheckpoints hands the RDD's checkpoint dir to it (no-op unset).
func (d *durable) ownCheckpoints(name string, it Interpreter) error {
	if d.ckptOwner == nil {
		return nil
	}
	return d.ckptOwner(d.checkpointDir(name), it)
}
