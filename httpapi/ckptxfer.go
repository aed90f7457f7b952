package httpapi

import (
	"context"
	"errors"
	"io"

	"github.com/valyala/fasthttp"
)

// internalCheckpoint streams to a peer a durable RDD's checkpoint held on
// this node's disk (cluster.CheckpointPath; kvstore.Store.ServeCheckpoint
// checks the request). A refusal, which comes before the first byte,
// answers its status; once streaming, a failure breaks the chunked body
// (no last chunk), so the peer never takes a cut stream for a whole one.
func (s *Server) internalCheckpoint(ctx *fasthttp.RequestCtx) {
	q := ctx.QueryArgs()
	rdd, path := string(q.Peek("rdd")), string(q.Peek("path"))
	if rdd == "" || path == "" {
		badRequest(ctx, "a checkpoint fetch needs the query parameters rdd and path")
		return
	}
	base, _ := ctx.UserValue(baseKey).(context.Context)
	pr, pw := io.Pipe()
	sw := &startWriter{w: pw, started: make(chan struct{}), base: base}
	refused := make(chan error, 1)
	go func() {
		err := s.cfg.Store.ServeCheckpoint(rdd, path, sw)
		if !sw.wrote {
			if err == nil {
				err = errors.New("empty checkpoint stream")
			}
			refused <- err
			pw.CloseWithError(err)
			return
		}
		if err != nil {
			s.cfg.Logger.Warn("checkpoint stream to a peer broke", "rdd", rdd, "path", path, "error", err)
		}
		pw.CloseWithError(err) // nil: the stream ends with its last chunk
	}()
	select {
	case err := <-refused:
		fail(ctx, err)
		return
	case <-sw.started:
	}
	ctx.SetContentType("application/x-tar")
	ctx.SetBodyStream(pr, -1) // fasthttp closes pr when the response is done
}

// startWriter tells, by closing started, when the first byte is written,
// and stops writing once the server closes (base is cancelled).
type startWriter struct {
	w       io.Writer
	started chan struct{}
	wrote   bool
	base    context.Context
}

func (s *startWriter) Write(p []byte) (int, error) {
	if s.base != nil && s.base.Err() != nil {
		return 0, s.base.Err()
	}
	if !s.wrote {
		s.wrote = true
		close(s.started)
	}
	return s.w.Write(p)
}
