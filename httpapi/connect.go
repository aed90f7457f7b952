package httpapi

import (
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// ConnectStreams is the Spark Connect port (connectapi.Server), as the
// console sees it: a session's open streams on this node. A stream runs
// on its session's node, where GET /sessions/{id}/spark-connect is routed, so
// that list is the whole cluster's for the session.
type ConnectStreams interface {
	Streams(session int64) []ConnectStream
}

// ConnectStream is one open Spark Connect stream (call) of a session:
// GET /sessions/{id}/spark-connect's rows, and the console's.
type ConnectStream struct {
	Method    string    `json:"method"`        // ExecutePlan, AnalyzePlan, ... (the metric's method label)
	Principal string    `json:"principal"`     // who runs it; "" without a users file
	Via       string    `json:"via,omitempty"` // the node that routed it here, if one did
	Started   time.Time `json:"started"`       // when it reached this node (the session's)
	Seconds   float64   `json:"seconds"`       // open for, so far
	BytesIn   int64     `json:"bytes_in"`      // message bytes from the client, so far
	BytesOut  int64     `json:"bytes_out"`     // message bytes to the client, so far
	Rows      int64     `json:"rows"`          // result rows (Arrow batches) sent, so far
}

// connectStreams answers GET /sessions/{id}/spark-connect: the session's open
// Spark Connect streams, and whether this node serves Spark Connect.
func (s *Server) connectStreams(ctx *fasthttp.RequestCtx, id int64) {
	if _, err := s.cfg.Sessions.Get(id); err != nil {
		fail(ctx, err)
		return
	}
	streams := []ConnectStream{}
	if s.cfg.Connect != nil {
		streams = s.cfg.Connect.Streams(id)
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "node": s.cfg.Cluster.ID(), "enabled": s.cfg.Connect != nil, "streams": streams})
}
