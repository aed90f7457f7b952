package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"github.com/hashicorp/go-hclog"

	"github.com/srdd/srdd/batches"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
	"github.com/valyala/fasthttp"
)

// apiError is the body of every error response (docs/ARCHITECTURE.md
// invariant 7). On Livy's routes it also carries Livy's own error shape,
// {"msg": "..."}, beside srdd's error object, so Livy clients that print
// msg (pylivy, sparkmagic, Airflow's hook) show the reason.
type apiError struct {
	Msg   string `json:"msg,omitempty"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// livyRoute reports whether path is under one of Livy's REST routes (the
// rows of the route table marked livy), before or after routing.
func livyRoute(path []byte) bool {
	for _, p := range livyPrefixes {
		if bytes.HasPrefix(path, []byte(p)) && (len(path) == len(p) || path[len(p)] == '/') {
			return true
		}
	}
	return false
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	if livyRoute(ctx.Path()) {
		e.Msg = msg
	}
	b, _ := json.Marshal(e)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}

// errorStatus maps the sentinel errors of the layers below to a status,
// a wire code and, for a 503 worth retrying, a Retry-After in seconds.
// The first row whose error matches wins; an error that matches none is
// a bug of ours (500 internal).
var errorStatus = []struct {
	errs       []error
	status     int
	code       string
	retryAfter string
}{
	{[]error{cluster.ErrHalted}, http.StatusServiceUnavailable, "registry_halted", ""},
	{[]error{cluster.ErrNotAdmitted}, http.StatusForbidden, "not_admitted", ""},
	{[]error{cluster.ErrPlaintextCluster}, http.StatusForbidden, "plaintext_cluster", ""},
	{[]error{fileroot.ErrForbidden}, http.StatusForbidden, "forbidden_path", ""},
	{[]error{fileroot.ErrRemote}, http.StatusBadRequest, "remote_uri_not_allowed", ""},
	{[]error{sessions.ErrConfNotAllowed}, http.StatusBadRequest, "conf_not_allowed", ""},
	{[]error{sessions.ErrConfTooLarge}, http.StatusBadRequest, "conf_too_large", ""},
	{[]error{kvstore.ErrInvalid, sessions.ErrInvalid, batches.ErrInvalid}, http.StatusBadRequest, "invalid", ""},
	{[]error{batches.ErrNotFound, cluster.ErrBatchNotFound}, http.StatusNotFound, "batch_not_found", ""},
	{[]error{batches.ErrLimit, cluster.ErrBatchLimit}, http.StatusTooManyRequests, "limit_reached", ""},
	{[]error{cluster.ErrBatchExists}, http.StatusConflict, "exists", ""},
	{[]error{batches.ErrNotLocal, batches.ErrClosed}, http.StatusServiceUnavailable, "unavailable", ""},
	{[]error{kvstore.ErrTooLarge, sessions.ErrTooLarge}, http.StatusRequestEntityTooLarge, "too_large", ""},
	{[]error{kvstore.ErrLimit, sessions.ErrLimit}, http.StatusTooManyRequests, "limit_reached", ""},
	{[]error{kvstore.ErrNotFound, cluster.ErrRDDNotFound}, http.StatusNotFound, "rdd_not_found", ""},
	{[]error{sessions.ErrNotFound, cluster.ErrSessionNotFound}, http.StatusNotFound, "session_not_found", ""},
	{[]error{sessions.ErrNoStatement}, http.StatusNotFound, "statement_not_found", ""},
	{[]error{cluster.ErrRDDExists, cluster.ErrSessionExists, cluster.ErrMemberExists, kvstore.ErrNameTaken}, http.StatusConflict, "exists", ""},
	{[]error{cluster.ErrAdmitLimit}, http.StatusTooManyRequests, "limit_reached", ""},
	{[]error{cluster.ErrSessionInactive}, http.StatusConflict, "session_inactive", ""},
	{[]error{kvstore.ErrLost}, http.StatusGone, "lost", ""},
	{[]error{sessions.ErrDead}, http.StatusConflict, "session_dead", ""},
	{[]error{sessions.ErrQueueFull}, http.StatusTooManyRequests, "queue_full", ""},
	{[]error{cluster.ErrInsufficientStorage}, http.StatusInsufficientStorage, "insufficient_storage", ""},
	{[]error{kvstore.ErrRecovering}, http.StatusServiceUnavailable, "recovering", "2"},
	{[]error{cluster.ErrNotOwner}, http.StatusServiceUnavailable, "moved", "1"},
	{[]error{cluster.ErrIdempotencyMismatch}, http.StatusUnprocessableEntity, "idempotency_mismatch", ""},
	{[]error{kvstore.ErrBusy}, http.StatusConflict, "busy", ""},
	{[]error{cluster.ErrNotDurable}, http.StatusConflict, "not_durable", ""},
	{[]error{sessions.ErrNotReady}, http.StatusServiceUnavailable, "starting", "5"},
	{[]error{cluster.ErrNodeNotFound}, http.StatusNotFound, "node_not_found", ""},
	{[]error{cluster.ErrNodeRemoved}, http.StatusConflict, "node_removed", ""},
	{[]error{cluster.ErrAddressInUse}, http.StatusConflict, "address_in_use", ""},
	{[]error{cluster.ErrOutcomeUnknown}, http.StatusServiceUnavailable, "outcome_unknown", ""},
	{[]error{cluster.ErrNoLeader}, http.StatusServiceUnavailable, "no_leader", "1"},
	{[]error{sessions.ErrNotLocal, cluster.ErrNotLeader, sparkbridge.ErrExited, sparkbridge.ErrConnClosed, cluster.ErrClosed, sessions.ErrClosed}, http.StatusServiceUnavailable, "unavailable", ""},
}

// answer writes v with 200, or err's status.
func answer[V any](ctx *fasthttp.RequestCtx, v V, err error) {
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, v)
}

// answerCreated writes v with 201 and Location: path, or err's status.
func answerCreated[V any](ctx *fasthttp.RequestCtx, path string, v V, err error) {
	if err != nil {
		fail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", path)
	writeJSON(ctx, http.StatusCreated, v)
}

// fail maps an error from the layers below to a status code and code.
func fail(ctx *fasthttp.RequestCtx, err error) {
	status, code := http.StatusInternalServerError, "internal"
rows:
	for _, r := range errorStatus {
		for _, e := range r.errs {
			if errors.Is(err, e) {
				status, code = r.status, r.code
				if r.retryAfter != "" {
					ctx.Response.Header.Set("Retry-After", r.retryAfter)
				}
				break rows
			}
		}
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
