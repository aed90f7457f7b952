package kvstore

import (
	"context"
	"fmt"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sparkbridge"
)

// The store is the only package that creates or drops shared RDDs inside
// interpreters (as in rqlite, where only the store touches the database):
// the session manager hands out interpreters and calls Hydrate when one
// starts.

// Hydrate makes every shared RDD the registry places in session sid exist
// in its interpreter it. The session manager calls it once Spark is up
// and before the session serves (sessions.Hydrator); an RDD that exists
// already is kept.
func (s *Store) Hydrate(ctx context.Context, sid int64, it Interpreter) error {
	for _, r := range s.reg.RDDs() {
		if r.SessionID != sid {
			continue
		}
		if err := it.Call(ctx, "rdd.create", createArgs(r), nil); err != nil && !sparkbridge.IsCode(err, sparkbridge.CodeExists) {
			return fmt.Errorf("cannot create shared rdd %q: %w", r.Name, err)
		}
	}
	return nil
}

// createArgs are the interpreter's arguments to create a shared RDD.
func createArgs(r cluster.RDD) map[string]any {
	return map[string]any{"name": r.Name, "durable": r.Mode == cluster.ModeDurable}
}

// created makes a shared RDD that was just added to the registry exist in
// its session's interpreter. A session still starting picks it up when it
// hydrates, so this never waits for Spark.
func (s *Store) created(sid int64, name string) error {
	return s.sess.IfStarted(sid, func(ctx context.Context, it Interpreter) error {
		args := map[string]any{"name": name}
		r, ok := s.reg.RDD(name)
		if ok {
			args = createArgs(r)
		}
		err := it.Call(ctx, "rdd.create", args, nil)
		switch {
		case err == nil:
			return nil
		case sparkbridge.IsCode(err, sparkbridge.CodeNameTaken):
			return fmt.Errorf("%w: %v", ErrNameTaken, remoteMessage(err))
		case !sparkbridge.IsCode(err, sparkbridge.CodeExists):
			return err
		case ok && r.Mode == cluster.ModeDurable:
			// The durable RDD's pusher created it first (and may have
			// applied writes to it already): it is the one to keep.
			return nil
		}
		// Left over from a drop whose interpreter call failed: the registry
		// says this RDD is new, so it must not adopt the old data.
		if err := it.Call(ctx, "rdd.drop", map[string]any{"name": name}, nil); err != nil {
			return err
		}
		return it.Call(ctx, "rdd.create", args, nil)
	})
}

// dropped removes a shared RDD that was just dropped from the registry
// from its session's interpreter, if that session runs here.
func (s *Store) dropped(sid int64, name string) error {
	return s.sess.IfStarted(sid, func(ctx context.Context, it Interpreter) error {
		err := it.Call(ctx, "rdd.drop", map[string]any{"name": name}, nil)
		if sparkbridge.IsCode(err, sparkbridge.CodeRDDNotFound) {
			return nil
		}
		return err
	})
}
