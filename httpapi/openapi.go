package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// The OpenAPI 3.1 document of this node's API (GET /openapi.json), built
// from the route table (routes.go): each row's doc, method, pattern and
// permission rule. node's TestOpenAPIMatchesTheRouter walks a real
// node's router from it (docs/ARCHITECTURE.md, "The API contract").

// js is a JSON object under construction.
type js = map[string]any

// apiOp describes one route of the document.
type apiOp struct {
	tag, summary string
	params       []js           // path and query parameters, headers
	body         js             // JSON request body schema, or nil
	bodyOptional bool           // the body may be absent
	ok           map[string]js  // success status -> response object
	errs         []int          // error statuses this route answers besides the common ones
	extra        map[string]any // x- fields
}

// Common error statuses every route may answer before it is dispatched:
// bad path encoding or missing CSRF header (400), credentials (401),
// loopback-only Host or cluster key (403), wrong media type (415), an
// over-long request (413, 431), and a bug of ours (500, logged).
var commonErrs = []int{400, 401, 403, 413, 415, 431, 500}

var errText = map[int]string{
	307: "Sent to the leader (Location)",
	400: "Invalid request (code `invalid` or a more precise one)",
	401: "Missing or wrong credentials (code `unauthorized`)",
	403: "Not allowed (codes `forbidden`, `forbidden_host`, `forbidden_path`)",
	404: "Not found (codes `rdd_not_found`, `file_not_found`, `key_not_found`, `session_not_found`, `statement_not_found`, `node_not_found`, `no_route`)",
	405: "Method not allowed (Allow lists the methods)",
	409: "Conflict (codes `exists`, `busy`, `session_dead`, `session_inactive`, `not_durable`, `node_removed`)",
	410: "The shared RDD's data is lost (code `lost`)",
	413: "Request too large (code `too_large`)",
	415: "A body needs Content-Type: application/json (code `unsupported_media_type`)",
	422: "Idempotency-Key reused with another request (code `idempotency_mismatch`)",
	429: "A limit is reached (codes `limit_reached`, `queue_full`)",
	431: "Request headers too large (code `headers_too_large`)",
	500: "A bug of ours, logged on the node (code `internal`)",
	503: "Unavailable now; retry (codes `recovering`, `moved`, `starting`, `no_leader`, `outcome_unknown`, `owner_unavailable`, `unavailable`; Retry-After when worth retrying)",
	508: "Forwarded in a loop between nodes (code `forward_loop`)",
}

func ref(name string) js   { return js{"$ref": "#/components/schemas/" + name} }
func str() js              { return js{"type": "string"} }
func integer() js          { return js{"type": "integer"} }
func number() js           { return js{"type": "number"} }
func boolean() js          { return js{"type": "boolean"} }
func arr(items js) js      { return js{"type": "array", "items": items} }
func nullable(t string) js { return js{"type": []string{t, "null"}} }

// obj is an object schema; further properties are allowed, so a server
// that adds a field keeps conforming.
func obj(props js, required ...string) js {
	o := js{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// closed is o with no further properties: a request body whose route
// refuses a field it does not take.
func closed(o js) js {
	o["additionalProperties"] = false
	return o
}

func jsonResp(desc string, schema js) js {
	return js{"description": desc, "content": js{"application/json": js{"schema": schema}}}
}

func pathParam(name, desc string, schema js) js {
	return js{"name": name, "in": "path", "required": true, "description": desc, "schema": schema}
}

func query(name, desc string, schema js) js {
	return js{"name": name, "in": "query", "required": false, "description": desc, "schema": schema}
}

// rddNameSchema is the RDD name rule (cluster.RDDNamePattern; the
// reserved names are in the document's x-srdd-limits).
var rddNameSchema = js{"type": "string", "pattern": "^(?:" + cluster.RDDNamePattern + ")$"}

var (
	pName  = pathParam("name", "shared RDD name", rddNameSchema)
	pKey   = pathParam("key", "key (percent-encode '/')", js{"type": "string", "minLength": 1})
	pID    = pathParam("id", "session id or name", str())
	pSID   = pathParam("sid", "statement id", js{"type": "integer", "minimum": 0})
	pNode  = pathParam("id", "node id", str())
	qFrom  = query("from", "first item of the page", js{"type": "integer", "minimum": 0, "maximum": maxQueryInt})
	qSize  = query("size", "items in the page (default 100)", js{"type": "integer", "minimum": 0, "maximum": maxQueryInt})
	qCons  = query("consistency", "read consistency of a durable RDD: default (every acknowledged write), linearizable (every write committed before the read), or stale (what the owner holds now)", js{"type": "string", "enum": []string{kvstore.ConsistencyDefault, kvstore.ConsistencyLinearizable, kvstore.ConsistencyStale}})
	qScope = query("scope", "local: this node's items only, not gathered from the cluster", js{"type": "string", "enum": []string{"local", "cluster"}})
	hIdem  = js{"name": "Idempotency-Key", "in": "header", "required": false, "description": "a retried write with the same key applies once", "schema": js{"type": "string", "maxLength": 256}}
)

// The routes' OpenAPI operations (route.doc in routes.go), one per row
// of the table.

func okJSON(desc string, schema js) map[string]js {
	return map[string]js{"200": jsonResp(desc, schema)}
}
func noContent(desc string) map[string]js { return map[string]js{"204": {"description": desc}} }

// keysBody is the body of batch get and delete.
func keysBody(lim kvstore.Limits) js {
	return obj(js{"keys": js{"type": "array", "maxItems": lim.MaxBatch, "items": js{"type": "string", "minLength": 1, "maxLength": lim.MaxKeyBytes}}}, "keys")
}

var docHealth = always(apiOp{tag: "ops", summary: "Liveness: the process serves HTTP", ok: okJSON("alive", obj(js{"status": str(), "node": str()}, "status", "node"))})

var docReady = always(apiOp{tag: "ops", summary: "Readiness: 200 only when the node can take a write", ok: map[string]js{"200": jsonResp("ready", ref("Ready")), "503": jsonResp("not ready (Retry-After)", ref("Ready"))}})

var docVersion = always(apiOp{tag: "ops", summary: "Livy API version and srdd's build", ok: okJSON("versions", obj(js{"version": str(), "srdd": str()}, "version"))})

var docMetrics = always(apiOp{tag: "ops", summary: "Prometheus metrics (text exposition format)", ok: map[string]js{"200": {"description": "metrics", "content": js{"text/plain": js{"schema": str()}}}}})

var docOpenAPI = always(apiOp{tag: "ops", summary: "This document", ok: okJSON("the OpenAPI 3.1 document", js{"type": "object"})})

var docUIIndex = always(apiOp{tag: "ui", summary: "The web console's page (static; its data comes from authenticated API calls)", ok: map[string]js{"200": {"description": "HTML", "content": js{"text/html": js{"schema": str()}}}}})

var docUIFile = always(apiOp{tag: "ui", summary: "A static file of the web console", params: []js{pathParam("file", "file name", str())},
	ok: map[string]js{"200": {"description": "the file", "content": js{"*/*": js{"schema": str()}}}}, errs: []int{404}})

var docCluster = always(apiOp{tag: "cluster", summary: "Members, leader, health and Raft indexes",
	params: []js{query("consistency", "strong: answered by the leader after it verifies its leadership", js{"type": "string"})},
	ok:     map[string]js{"200": jsonResp("cluster status", ref("ClusterStatus")), "307": {"description": errText[307]}}, errs: []int{503}})

var docClusterJoin = always(apiOp{tag: "cluster", summary: "Add a node (node-to-node; admin or the cluster key)",
	body: obj(js{"id": str(), "raft_addr": str(), "http_addr": str(), "voter": boolean(), "has_state": boolean()}, "id", "raft_addr", "http_addr"),
	ok:   map[string]js{"200": jsonResp("joined", js{"type": "object"}), "307": {"description": errText[307]}}, errs: []int{404, 409, 503}})

var docClusterAdmit = always(apiOp{tag: "cluster", summary: "Admit a node ID: it may then join once (as a voter if voter is true)",
	body: obj(js{"id": js{"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"}, "voter": boolean()}, "id"),
	ok:   okJSON("admitted", obj(js{"admitted": str(), "voter": boolean()}, "admitted", "voter")), errs: []int{409, 429, 503}})

var docClusterRemove = always(apiOp{tag: "cluster", summary: "Remove a node (admin or the cluster key)", params: []js{pNode},
	ok: map[string]js{"204": {"description": "removed"}, "307": {"description": errText[307]}}, errs: []int{404, 409, 503}})

var docInternalApply = always(apiOp{tag: "internal", summary: "Apply a registry command on the leader (node-to-node; msgpack)",
	ok: map[string]js{"200": {"description": "msgpack result", "content": js{"application/msgpack": js{"schema": str()}}}}, errs: []int{503}, extra: map[string]any{"x-internal": true}})

var docInternalIndex = always(apiOp{tag: "internal", summary: "The leader's commit index (node-to-node)",
	ok: map[string]js{"200": {"description": "index", "content": js{"*/*": js{"schema": str()}}}}, errs: []int{503}, extra: map[string]any{"x-internal": true}})

var docInternalSilent = always(apiOp{tag: "internal", summary: "Peers this leader cannot reach (node-to-node)",
	ok: okJSON("silent peers", js{}), errs: []int{503}, extra: map[string]any{"x-internal": true}})

var docInternalCheckpoint = always(apiOp{tag: "internal", summary: "A durable RDD's checkpoint held on this node's disk, as a tar stream (node-to-node)",
	params: []js{
		{"name": "rdd", "in": "query", "required": true, "description": "shared RDD name", "schema": rddNameSchema},
		{"name": "path", "in": "query", "required": true, "description": "the checkpoint's path, as this node wrote it", "schema": str()},
	},
	ok:   map[string]js{"200": {"description": "the checkpoint: a tar of its file or directory, then a trailer entry", "content": js{"application/x-tar": js{"schema": str()}}}},
	errs: []int{400, 404}, extra: map[string]any{"x-internal": true}})

var docRDDList = always(apiOp{tag: "rdds", summary: "List shared RDDs", params: []js{qScope},
	ok: okJSON("shared RDDs", obj(js{"rdds": arr(ref("RDD"))}, "rdds"))})

var docRDDCreate = always(apiOp{tag: "rdds", summary: "Create a shared RDD (in the named session, or this node's default one)",
	body: closed(obj(js{"name": rddNameSchema, "session": js{"type": []string{"string", "integer"}},
		"mode":     js{"type": "string", "enum": []string{"durable", "memory"}},
		"replicas": js{"type": "integer", "minimum": 1, "description": "copies wanted, at most the cluster's node count (400 above it); default 2 for a durable RDD in a cluster of 2 or more nodes, else 1. Each copy is a session on a different node; one takes over when the owner's node is lost"}}, "name")),
	ok: map[string]js{"201": jsonResp("created", ref("RDD"))}, errs: []int{404, 409, 429, 503}})

var docRDDGet = always(apiOp{tag: "rdds", summary: "Describe a shared RDD (state, keys, load progress, checkpoint)", params: []js{pName}, ok: okJSON("the RDD", ref("RDD")), errs: []int{404, 410, 503}})

var docRDDDrop = always(apiOp{tag: "rdds", summary: "Drop a shared RDD", params: []js{pName}, ok: noContent("dropped"), errs: []int{404, 409, 503}})

var docKeyGet = always(apiOp{tag: "keys", summary: "Get one key", params: []js{pName, pKey, qCons},
	ok: okJSON("the value", obj(js{"key": str(), "value": js{}}, "key", "value")), errs: []int{404, 410, 503}})

func docKeyPut(lim kvstore.Limits) apiOp {
	return apiOp{tag: "keys", summary: "Set one key; the body is the JSON value", params: []js{pName, pKey, hIdem},
		body: js{"description": "any JSON value, at most " + strconv.Itoa(lim.MaxValueBytes) + " bytes and " + strconv.Itoa(kvstore.MaxValueDepth) + " levels deep"},
		ok:   noContent("written"), errs: []int{404, 409, 410, 422, 429, 503}}
}

var docKeyDelete = always(apiOp{tag: "keys", summary: "Delete one key", params: []js{pName, pKey, hIdem}, ok: noContent("deleted"), errs: []int{404, 409, 410, 422, 503}})

func docBatchGet(lim kvstore.Limits) apiOp {
	return apiOp{tag: "keys", summary: "Get many keys", params: []js{pName, qCons}, body: keysBody(lim),
		ok: okJSON("found values and missing keys", obj(js{"values": js{"type": "object"}, "missing": arr(str())}, "values", "missing")), errs: []int{404, 410, 503}}
}

func docBatchSet(lim kvstore.Limits) apiOp {
	return apiOp{tag: "keys", summary: "Set many keys", params: []js{pName, hIdem},
		body: obj(js{"items": js{"type": "object", "maxProperties": lim.MaxBatch, "description": "key -> JSON value"}}, "items"),
		ok:   okJSON("written", obj(js{"written": integer()}, "written")), errs: []int{404, 409, 410, 422, 429, 503}}
}

func docBatchDelete(lim kvstore.Limits) apiOp {
	return apiOp{tag: "keys", summary: "Delete many keys", params: []js{pName, hIdem}, body: keysBody(lim),
		ok: okJSON("deleted", obj(js{"deleted": integer()}, "deleted")), errs: []int{404, 409, 410, 422, 503}}
}

func docRDDScan(lim kvstore.Limits) apiOp {
	return apiOp{tag: "keys", summary: "Scan keys in order by prefix, a page at a time", params: []js{pName,
		query("prefix", "key prefix", str()),
		query("cursor", "the cursor of the previous page", js{"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}),
		query("limit", "page size (default 100)", js{"type": "integer", "minimum": 1, "maximum": lim.MaxBatch})},
		ok:   okJSON("a page", obj(js{"items": arr(obj(js{"key": str(), "value": js{}}, "key", "value")), "cursor": js{"type": "string", "description": "present while more keys follow"}}, "items")),
		errs: []int{404, 410, 503}}
}

var docRDDCount = always(apiOp{tag: "keys", summary: "Count keys", params: []js{pName}, ok: okJSON("count", obj(js{"count": integer()}, "count")), errs: []int{404, 410, 503}})

var docRDDLoad = always(apiOp{tag: "bulk", summary: "Start a bulk load from a file in a --file-root; 202, progress in GET /v1/rdds/{name}", params: []js{pName},
	body: obj(js{"path": str(), "format": js{"type": "string", "enum": []string{"jsonl", "csv", "parquet"}}, "mode": str(), "key_column": str(), "value_column": str()}, "path"),
	ok:   map[string]js{"202": jsonResp("started", ref("LoadStatus"))}, errs: []int{404, 409, 410, 503}})

var docRDDSave = always(apiOp{tag: "bulk", summary: "Save a shared RDD to a file in a --file-root", params: []js{pName},
	body: obj(js{"path": str(), "format": js{"type": "string", "enum": []string{"jsonl", "csv", "parquet"}}, "overwrite": boolean()}, "path"),
	ok:   okJSON("saved", obj(js{"rows": integer(), "path": str(), "format": str(), "seconds": number()})), errs: []int{404, 409, 410, 503}})

var docRDDCheckpoint = always(apiOp{tag: "bulk", summary: "Checkpoint a durable shared RDD now", params: []js{pName},
	ok: okJSON("checkpointed", obj(js{"index": integer(), "path": str(), "rows": integer(), "seconds": number()})), errs: []int{404, 409, 410, 503}})

var docSessionList = always(apiOp{tag: "livy", summary: "List sessions (Livy)", params: []js{qFrom, qSize, qScope},
	ok: okJSON("a page of sessions", obj(js{"from": integer(), "total": integer(), "sessions": arr(ref("Session"))}, "from", "total", "sessions"))})

var docSessionNew = always(apiOp{tag: "livy", summary: "Start a session (Livy; starts an interpreter)", body: ref("CreateSession"), bodyOptional: true,
	ok: map[string]js{"201": jsonResp("starting", ref("Session"))}, errs: []int{404, 409, 429, 503}})

var docSessionGet = always(apiOp{tag: "livy", summary: "Describe a session (Livy)", params: []js{pID}, ok: okJSON("the session", ref("Session")), errs: []int{404, 503}})

var docSessionDel = always(apiOp{tag: "livy", summary: "Stop a session (Livy)", params: []js{pID}, ok: okJSON("deleted", obj(js{"msg": str()})), errs: []int{404, 409, 503}})

var docSessionState = always(apiOp{tag: "livy", summary: "A session's state (Livy)", params: []js{pID}, ok: okJSON("state", obj(js{"id": integer(), "state": str()}, "id", "state")), errs: []int{404, 503}})

var docSessionConnect = always(apiOp{tag: "connect", summary: "A session's open Spark Connect streams, on the node that runs it", params: []js{pID},
	ok: okJSON("streams", obj(js{"id": integer(), "node": str(), "enabled": boolean(), "streams": arr(ref("ConnectStream"))}, "id", "node", "enabled", "streams")), errs: []int{404, 503}})

var docSessionLog = always(apiOp{tag: "livy", summary: "A session's interpreter log (Livy)", params: []js{pID, qFrom, qSize},
	ok: okJSON("log lines", obj(js{"id": integer(), "from": integer(), "total": integer(), "log": arr(str())}, "id", "log")), errs: []int{404, 503}})

var docStmtList = always(apiOp{tag: "livy", summary: "List a session's statements (Livy)", params: []js{pID, qFrom, qSize, query("order", "asc or desc", js{"type": "string", "enum": []string{"asc", "desc"}})},
	ok: okJSON("statements", obj(js{"total_statements": integer(), "statements": arr(ref("Statement"))}, "statements")), errs: []int{404, 503}})

var docStmtNew = always(apiOp{tag: "livy", summary: "Run code in a session (Livy)", params: []js{pID},
	body: obj(js{"code": str(), "kind": js{"type": "string", "enum": []string{"pyspark", "python", "sql", "spark", "sparkr"}}}, "code"),
	ok:   map[string]js{"201": jsonResp("queued", ref("Statement"))}, errs: []int{404, 409, 429, 503}})

var docStmtGet = always(apiOp{tag: "livy", summary: "A statement and its output (Livy); ?wait=N long-polls up to N seconds", params: []js{pID, pSID,
	query("wait", "seconds to wait for the statement to finish", js{"type": "integer", "minimum": 0, "maximum": maxWait})},
	ok: okJSON("the statement", ref("Statement")), errs: []int{404, 503}})

var docStmtCancel = always(apiOp{tag: "livy", summary: "Cancel a statement (Livy)", params: []js{pID, pSID}, bodyOptional: true, body: js{"type": "object"},
	ok: okJSON("canceled", obj(js{"msg": str()})), errs: []int{404, 409, 503}})

var docBatchesList = always(apiOp{tag: "batches", summary: "List batches (Livy)", params: []js{qFrom, qSize},
	ok: okJSON("a page of batches", obj(js{"from": integer(), "total": integer(), "sessions": arr(ref("Batch"))}, "from", "total", "sessions"))})

var docBatchesNew = always(apiOp{tag: "batches", summary: "Submit a batch (Livy; runs spark-submit on the least-loaded live node)", body: ref("CreateBatch"),
	ok: map[string]js{"201": jsonResp("starting", ref("Batch"))}, errs: []int{404, 409, 429, 503}})

var docBatchesGet = always(apiOp{tag: "batches", summary: "Describe a batch (Livy)", params: []js{pID}, ok: okJSON("the batch", ref("Batch")), errs: []int{404, 503}})

var docBatchesDel = always(apiOp{tag: "batches", summary: "Kill a batch: its driver and the application (Livy)", params: []js{pID},
	ok: okJSON("deleted", obj(js{"msg": str()})), errs: []int{404, 409, 503}})

var docBatchesState = always(apiOp{tag: "batches", summary: "A batch's state (Livy)", params: []js{pID}, ok: okJSON("state", obj(js{"id": integer(), "state": str()}, "id", "state")), errs: []int{404, 503}})

var docBatchesLog = always(apiOp{tag: "batches", summary: "A batch's driver log (Livy)", params: []js{pID, qFrom, qSize},
	ok: okJSON("log lines", obj(js{"id": integer(), "from": integer(), "total": integer(), "log": arr(str())}, "id", "log")), errs: []int{404, 503}})

var docCompletion = always(apiOp{tag: "livy", summary: "Code completion (Livy)", params: []js{pID},
	body: obj(js{"code": str(), "kind": str(), "cursor": integer()}, "code"),
	ok:   okJSON("candidates", obj(js{"candidates": arr(str())}, "candidates")), errs: []int{404, 409, 503}})

// apiSchemas are the shared component schemas.
func apiSchemas() js {
	return js{
		"Error": obj(js{"error": obj(js{"code": str(), "message": str()}, "code", "message")}, "error"),
		"Ready": obj(js{"status": js{"type": "string", "enum": []string{"ready", "not_ready"}}, "node": str(), "waiting_for": arr(str())}, "status"),
		"RDD": obj(js{
			"name": str(), "session": integer(), "node": str(), "mode": js{"type": "string", "enum": []string{"durable", "memory"}},
			"state": str(), "keys": nullable("integer"), "created_at": integer(), "message": str(),
			"load": ref("LoadStatus"), "engine": js{"type": "object"},
			"checkpoint":       obj(js{"index": integer(), "path": str(), "rows": integer(), "at": integer()}),
			"tail_writes":      integer(),
			"last_write_index": integer(),
			"last_error":       str(),
			"next_attempt_at":  integer(),
			"replicas":         integer(),
			"copies":           arr(obj(js{"node": str(), "session": integer(), "role": js{"type": "string", "enum": []string{"owner", "copy"}}, "applied_index": integer(), "checkpoint_index": integer()}, "node", "session", "role")),
			"under_replicated": boolean(),
			"at_risk":          js{"type": "string", "description": "why one lost machine would lose acknowledged writes (\"one copy on node-local storage\"); absent when it would not"},
		}, "name", "mode", "state"),
		"LoadStatus": obj(js{"state": str(), "path": str(), "format": str(), "mode": str(), "rows": integer(),
			"percent": number(), "rows_per_sec": number(), "seconds": number(), "error": str()}, "state"),
		"Session": obj(js{"id": integer(), "name": nullable("string"), "appId": nullable("string"), "owner": nullable("string"),
			"proxyUser": nullable("string"), "state": str(), "kind": str(), "appInfo": js{"type": "object"},
			"log": arr(str()), "node": str()}, "id", "state"),
		"ConnectStream": obj(js{"method": str(), "principal": str(), "via": str(), "started": js{"type": "string", "format": "date-time"},
			"seconds": number(), "bytes_in": integer(), "bytes_out": integer(), "rows": integer()}, "method", "principal", "started", "seconds", "bytes_in", "bytes_out", "rows"),
		"Statement": obj(js{"id": integer(), "code": str(), "state": str(),
			"output":   js{"description": "Livy's output: {status, execution_count, data: {text/plain, application/json, image/png...}} or {status: error, ename, evalue, traceback}", "type": []string{"object", "null"}},
			"progress": number(), "started": integer(), "completed": integer()}, "id", "state"),
		"CreateSession": obj(js{
			"kind": str(), "name": str(), "conf": js{"type": "object", "additionalProperties": str()}, "proxyUser": str(),
			"heartbeatTimeoutInSecond": integer(), "ttl": str(), "idleTimeout": str(),
			"driverMemory": str(), "driverCores": integer(), "executorMemory": str(), "executorCores": integer(), "numExecutors": integer(),
			"jars": arr(str()), "pyFiles": arr(str()), "files": arr(str()), "archives": arr(str()), "queue": str(),
			"viewUsers": arr(str()), "modifyUsers": arr(str()),
		}),
		"Batch": obj(js{"id": integer(), "name": nullable("string"), "owner": nullable("string"), "proxyUser": nullable("string"),
			"state": js{"type": "string", "enum": []string{"starting", "running", "success", "dead", "killed"}},
			"appId": nullable("string"), "appInfo": js{"type": "object"}, "log": arr(str()), "node": str(), "reason": str()}, "id", "state"),
		"CreateBatch": obj(js{
			"file": str(), "className": str(), "args": arr(str()), "name": str(), "conf": js{"type": "object", "additionalProperties": str()}, "proxyUser": str(),
			"driverMemory": str(), "driverCores": integer(), "executorMemory": str(), "executorCores": integer(), "numExecutors": integer(),
			"jars": arr(str()), "pyFiles": arr(str()), "files": arr(str()), "archives": arr(str()), "queue": str(),
			"viewUsers": arr(str()), "modifyUsers": arr(str()),
		}, "file"),
		"ClusterStatus": obj(js{"admitted": arr(obj(js{"id": str(), "voter": boolean(), "by": str(), "at": integer()}, "id", "voter")),
			"node": str(), "leader": str(), "state": str(), "term": str(), "commit_index": str(),
			"applied_index": str(), "last_contact": str(),
			"members": arr(obj(js{"id": str(), "raft_addr": str(), "http_addr": str(), "status": str(), "since": integer(),
				"suffrage": str(), "leader": boolean(), "sessions": arr(integer()), "rdds": arr(str())}, "id"))}, "node", "members"),
	}
}

// ruleDoc says in words who may call a route with a rule.
var ruleDoc = map[rule]string{
	rulePublic:        "public: no credentials needed",
	ruleAny:           "any authenticated user",
	ruleMetrics:       "the metrics role",
	ruleRead:          "read:GLOB matching the RDD",
	ruleWrite:         "write:GLOB matching the RDD",
	ruleCreate:        "create:GLOB matching the name in the body",
	ruleCode:          "the code role",
	ruleSessionView:   "the session's owner, a view or modify user, or admin",
	ruleSessionModify: "the session's owner, a modify user, or admin",
	ruleSessionCode:   "the code role, and the session's owner, a modify user, or admin",
	ruleAdmin:         "admin (or a node with the cluster key)",
	ruleCluster:       "node-to-node: the cluster key (X-Srdd-Cluster-Key); with no key, admin",
}

var ruleName = map[rule]string{
	rulePublic: "public", ruleAny: "any", ruleMetrics: "metrics", ruleRead: "read", ruleWrite: "write",
	ruleCreate: "create", ruleCode: "code", ruleSessionView: "session-view", ruleSessionModify: "session-modify",
	ruleSessionCode: "session-code", ruleAdmin: "admin", ruleCluster: "cluster",
}

// OpenAPIDocument builds the document for these limits.
func OpenAPIDocument(lim kvstore.Limits, version string) ([]byte, error) {
	if lim.MaxBatch == 0 || lim.MaxKeyBytes == 0 || lim.MaxValueBytes == 0 {
		d := kvstore.DefaultLimits()
		lim.MaxBatch, lim.MaxKeyBytes, lim.MaxValueBytes = d.MaxBatch, d.MaxKeyBytes, d.MaxValueBytes
	}
	paths := js{}
	for _, rt := range routes {
		op, method, path, r := rt.doc(lim), rt.method, rt.pattern, rt.rule
		o := js{"summary": op.summary, "tags": []string{op.tag}, "operationId": operationID(rt.name)}
		o["x-srdd-auth"] = ruleName[r]
		o["description"] = "Who may call: " + ruleDoc[r] + " (when the node has --auth-file)."
		if r == rulePublic {
			o["security"] = []js{}
		}
		if len(op.params) > 0 {
			o["parameters"] = op.params
		}
		if op.body != nil {
			o["requestBody"] = js{"required": !op.bodyOptional, "content": js{"application/json": js{"schema": op.body}}}
		}
		resp := js{}
		for st, v := range op.ok {
			resp[st] = v
		}
		errs := append(append([]int{}, commonErrs...), op.errs...)
		if r != rulePublic || strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/sessions") {
			errs = append(errs, 404, 405, 503, 508)
		}
		for _, st := range errs {
			k := strconv.Itoa(st)
			if _, ok := resp[k]; ok {
				continue
			}
			resp[k] = js{"description": errText[st], "content": js{"application/json": js{"schema": ref("Error")}}}
		}
		o["responses"] = resp
		for k, v := range op.extra {
			o[k] = v
		}
		item, _ := paths[path].(js)
		if item == nil {
			item = js{}
			paths[path] = item
		}
		item[strings.ToLower(method)] = o
	}
	doc := js{
		"openapi": "3.1.0",
		"info": js{
			"title":   "srdd",
			"version": version,
			"summary": "Spark RDDs as a replicated key-value store, behind Apache Livy's REST API",
			"description": "Errors are {\"error\": {\"code\", \"message\"}} (docs/ARCHITECTURE.md invariant 7). " +
				"Limits: request body " + strconv.Itoa(MaxRequestBytes) + " bytes; key " + strconv.Itoa(lim.MaxKeyBytes) +
				" bytes; value " + strconv.Itoa(lim.MaxValueBytes) + " bytes, " + strconv.Itoa(kvstore.MaxValueDepth) +
				" levels; batch " + strconv.Itoa(lim.MaxBatch) + " keys; ?wait at most " + strconv.Itoa(maxWait) + " s. " +
				"With --auth-file every call but the public ones needs a bearer token or HTTP Basic; each operation's x-srdd-auth names its rule (httpapi/auth.go).",
			"license": js{"name": "Apache-2.0", "identifier": "Apache-2.0"},
		},
		"paths": paths,
		"components": js{
			"schemas": apiSchemas(),
			"securitySchemes": js{
				"bearer": js{"type": "http", "scheme": "bearer", "description": "a token from `srdd auth add`"},
				"basic":  js{"type": "http", "scheme": "basic"},
			},
		},
		"security": []js{{"bearer": []string{}}, {"basic": []string{}}},
		"x-srdd-limits": js{
			"max_request_bytes": MaxRequestBytes, "max_key_bytes": lim.MaxKeyBytes, "max_value_bytes": lim.MaxValueBytes,
			"max_value_depth": kvstore.MaxValueDepth, "max_batch": lim.MaxBatch, "max_wait_seconds": maxWait,
			"rdd_name_pattern": cluster.RDDNamePattern, "reserved_rdd_names": cluster.ReservedRDDNames(),
		},
	}
	return json.Marshal(doc)
}

// operationID turns "GET /v1/rdds/{name}" into "get_v1_rdds_name".
func operationID(route string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(route) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '/' || r == ' ' || r == '.':
			b.WriteByte('_')
		}
	}
	return strings.Trim(strings.ReplaceAll(b.String(), "__", "_"), "_")
}

func (s *Server) openAPI(ctx *fasthttp.RequestCtx) {
	s.openapi.once.Do(func() {
		var lim kvstore.Limits
		if s.cfg.Store != nil {
			lim = s.cfg.Store.Limits()
		}
		s.openapi.body, s.openapi.err = OpenAPIDocument(lim, s.cfg.Version)
	})
	if s.openapi.err != nil {
		fail(ctx, s.openapi.err)
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetBody(s.openapi.body)
}
