package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/srdd/srdd/batches"
	"github.com/srdd/srdd/cluster"
	"github.com/valyala/fasthttp"
)

// batchRecord finds a batch by the id in a path, catching up with the
// leader before it says there is none (it may have been created through
// another node a moment ago).
func (s *Server) batchRecord(ref string) (cluster.Batch, bool) {
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return cluster.Batch{}, false
	}
	b, ok := s.cfg.Cluster.Batch(id)
	if !ok && s.cfg.Cluster.CatchUp() == nil {
		b, ok = s.cfg.Cluster.Batch(id)
	}
	return b, ok
}

// batchOwner sends GET /batches/{id}, its log and DELETE to the node the
// batch runs on, while that node is up; the registry answers the rest
// (a batch on a node that is down is dead already: cluster.State.loseBatches).
func (s *Server) batchOwner(ctx *fasthttp.RequestCtx, seg []string) target {
	if placedHere(ctx) || (len(seg) == 3 && seg[2] == "state") {
		return target{}
	}
	b, ok := s.batchRecord(seg[1])
	if !ok || b.Node == s.cfg.Cluster.ID() {
		return target{}
	}
	if m, ok := s.cfg.Cluster.Member(b.Node); !ok || m.Status != cluster.NodeUp {
		return target{}
	}
	return target{node: b.Node, what: fmt.Sprintf("batch %d", b.ID)}
}

func (s *Server) listBatches(ctx *fasthttp.RequestCtx) {
	from, size, ok := pageArgs(ctx)
	if !ok {
		return
	}
	views, total := s.cfg.Batches.List(from, size)
	for i := range views {
		if b, ok := s.cfg.Cluster.Batch(views[i].ID); ok && !s.mayView(ctx, b.Principal, b.ViewUsers, b.ModifyUsers) {
			views[i].Log = []string{}
		}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"from": from, "total": total, "sessions": views})
}

func (s *Server) createBatch(ctx *fasthttp.RequestCtx) {
	var req batches.Request
	if !s.decodeCreation(ctx, &req, &req.Principal, &req.ProxyUser) {
		return
	}
	v, err := s.cfg.Batches.Create(req)
	answerCreated(ctx, "/batches/"+strconv.FormatInt(v.ID, 10), v, err)
}

func (s *Server) getBatch(ctx *fasthttp.RequestCtx, id int64) {
	v, err := s.cfg.Batches.Get(id)
	answer(ctx, v, err)
}

func (s *Server) batchState(ctx *fasthttp.RequestCtx, id int64) {
	b, ok := s.batchRecord(strconv.FormatInt(id, 10))
	if !ok {
		fail(ctx, fmt.Errorf("%w: %d", batches.ErrNotFound, id))
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": b.ID, "state": b.State})
}

func (s *Server) batchLog(ctx *fasthttp.RequestCtx, id int64) {
	var from *int
	if ctx.QueryArgs().Has("from") {
		f, ok := intArg(ctx, "from", 0)
		if !ok {
			return
		}
		from = &f
	}
	size, ok := intArg(ctx, "size", 100)
	if !ok {
		return
	}
	lines, start, total, err := s.cfg.Batches.Log(id, from, size)
	if errors.Is(err, batches.ErrNotLocal) {
		// Its node is down (batchOwner forwards otherwise): the log went
		// with it; the registry still knows why the batch ended.
		b, _ := s.cfg.Cluster.Batch(id)
		lines = []string{"srdd: the driver log of batch " + strconv.FormatInt(id, 10) + " is on node " + b.Node + ", which is not up"}
		if b.Reason != "" {
			lines = append(lines, "srdd: "+b.Reason)
		}
		writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "from": 0, "total": len(lines), "log": lines})
		return
	}
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "from": start, "total": total, "log": lines})
}

func (s *Server) deleteBatch(ctx *fasthttp.RequestCtx, id int64) {
	if err := s.cfg.Batches.Kill(id); err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]string{"msg": "deleted"})
}
