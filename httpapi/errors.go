package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"github.com/hashicorp/go-hclog"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
	"github.com/valyala/fasthttp"
)

// apiError is the body of every error response (docs/ARCHITECTURE.md invariant 7).
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	b, _ := json.Marshal(e)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}

// fail maps an error from the layers below to a status code and code.
func fail(ctx *fasthttp.RequestCtx, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, fileroot.ErrForbidden):
		status, code = http.StatusForbidden, "forbidden_path"
	case errors.Is(err, fileroot.ErrRemote):
		status, code = http.StatusBadRequest, "remote_uri_not_allowed"
	case errors.Is(err, sessions.ErrConfNotAllowed):
		status, code = http.StatusBadRequest, "conf_not_allowed"
	case errors.Is(err, sessions.ErrConfTooLarge):
		status, code = http.StatusBadRequest, "conf_too_large"
	case errors.Is(err, kvstore.ErrInvalid), errors.Is(err, sessions.ErrInvalid):
		status, code = http.StatusBadRequest, "invalid"
	case errors.Is(err, kvstore.ErrTooLarge), errors.Is(err, sessions.ErrTooLarge):
		status, code = http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, kvstore.ErrLimit), errors.Is(err, sessions.ErrLimit):
		status, code = http.StatusTooManyRequests, "limit_reached"
	case errors.Is(err, kvstore.ErrNotFound), errors.Is(err, cluster.ErrRDDNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, sessions.ErrNotFound), errors.Is(err, cluster.ErrSessionNotFound):
		status, code = http.StatusNotFound, "session_not_found"
	case errors.Is(err, sessions.ErrNoStatement):
		status, code = http.StatusNotFound, "statement_not_found"
	case errors.Is(err, cluster.ErrRDDExists), errors.Is(err, cluster.ErrSessionExists):
		status, code = http.StatusConflict, "exists"
	case errors.Is(err, cluster.ErrSessionInactive):
		status, code = http.StatusConflict, "session_inactive"
	case errors.Is(err, kvstore.ErrLost):
		status, code = http.StatusGone, "lost"
	case errors.Is(err, sessions.ErrDead):
		status, code = http.StatusConflict, "session_dead"
	case errors.Is(err, sessions.ErrQueueFull):
		status, code = http.StatusTooManyRequests, "queue_full"
	case errors.Is(err, kvstore.ErrRecovering):
		status, code = http.StatusServiceUnavailable, "recovering"
		ctx.Response.Header.Set("Retry-After", "2")
	case errors.Is(err, cluster.ErrNotOwner):
		status, code = http.StatusServiceUnavailable, "moved"
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(err, cluster.ErrIdempotencyMismatch):
		status, code = http.StatusUnprocessableEntity, "idempotency_mismatch"
	case errors.Is(err, kvstore.ErrBusy):
		status, code = http.StatusConflict, "busy"
	case errors.Is(err, cluster.ErrNotDurable):
		status, code = http.StatusConflict, "not_durable"
	case errors.Is(err, sessions.ErrNotReady):
		status, code = http.StatusServiceUnavailable, "starting"
		ctx.Response.Header.Set("Retry-After", "5")
	case errors.Is(err, cluster.ErrNodeNotFound):
		status, code = http.StatusNotFound, "node_not_found"
	case errors.Is(err, cluster.ErrNodeRemoved):
		status, code = http.StatusConflict, "node_removed"
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		status, code = http.StatusServiceUnavailable, "outcome_unknown"
	case errors.Is(err, cluster.ErrNoLeader):
		status, code = http.StatusServiceUnavailable, "no_leader"
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(err, sessions.ErrNotLocal), errors.Is(err, cluster.ErrNotLeader),
		errors.Is(err, sparkbridge.ErrExited), errors.Is(err, sparkbridge.ErrConnClosed),
		errors.Is(err, cluster.ErrClosed), errors.Is(err, sessions.ErrClosed):
		status, code = http.StatusServiceUnavailable, "unavailable"
	}
	msg := err.Error()
	if code == "internal" {
		// An error we did not map is a bug of ours: its text may name Go
		// types, files or a JVM stack. It goes to the log only.
		if l, ok := ctx.UserValue(loggerKey).(hclog.Logger); ok {
			l.Error("internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "error", msg)
		}
		msg = "internal error (logged on the node)"
	}
	writeError(ctx, status, code, msg)
}

// loggerKey is the user value under which handle stores the logger.
const loggerKey = "srdd.logger"

func badRequest(ctx *fasthttp.RequestCtx, format string) {
	writeError(ctx, http.StatusBadRequest, "invalid", format)
}

func notFoundRoute(ctx *fasthttp.RequestCtx) {
	writeError(ctx, http.StatusNotFound, "no_route", "no such endpoint: "+string(ctx.Path()))
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, http.StatusMethodNotAllowed, "method_not_allowed",
		string(ctx.Method())+" is not allowed here; allowed: "+allow)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(ctx, err)
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}

// decodeBody parses a JSON request body into v, refusing trailing data.
func decodeBody(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.PostBody()
	if len(body) == 0 {
		badRequest(ctx, "request body must be a JSON object")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		badRequest(ctx, jsonProblem(err))
		return false
	}
	return true
}

// jsonProblem describes a JSON decoding error in the API's words, without
// the Go type names encoding/json puts in its messages.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return "request body must be a JSON " + jsonKind(te.Type.Kind())
		}
		return fmt.Sprintf("field %q must be a JSON %s, not %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON body at byte %d", se.Offset)
	}
	return "malformed JSON body"
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}
