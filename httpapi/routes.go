package httpapi

import (
	"slices"
	"strconv"
	"strings"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// The route table: every HTTP route of a node, one row each (the Consul
// pattern, agent/http_register.go). The router (router.go), the
// permission checks (auth.go), the metric labels (metrics.go) and the
// OpenAPI document (openapi.go) all derive from it, so adding a route is
// adding a row here, with its handler and its OpenAPI operation (a doc
// fragment in openapi.go).
//
// A route's name is "METHOD /pattern" ("GET /v1/rdds/{name}"): the value
// of the route label of srdd_http_request_duration_seconds, the key of
// x-srdd-auth and operationId in the document, and what audit lines say.

// route is one row of the table.
type route struct {
	method  string // GET, POST, PUT or DELETE; HEAD is served by GET
	pattern string // "/v1/rdds/{name}/keys/{key}"; {x} matches one segment
	rule    rule   // who may call it (auth.go)
	// node marks the routes nodes call on each other: nodePath, every
	// method on the path is node-to-node (the cluster key is required
	// when set, the client port refuses it with peer TLS, no principal
	// is needed to reach the permission check); nodeCall, this method
	// only (removal, which admins call too). Paths under /internal/ are
	// node-to-node whatever their row says (nodeOnly).
	node nodeKind
	// nodeMay lets a node (its certificate, or the cluster key) call an
	// admin route with no principal: a joining or a leaving node.
	nodeMay bool
	// capability lets a session's capability call it, on that session's
	// own RDDs on this node (docs/ARCHITECTURE.md, "Sessions hold no
	// secret"; capabilityOwns).
	capability bool
	// livy marks Livy's REST API: every error on a path under the
	// route's first segment also carries Livy's "msg" (livyRoute).
	livy bool
	// op is the per-RDD metric series (srdd_rdd_requests_total{op}) and
	// latency kind of the route, if it is a per-RDD operation.
	op rddOp
	// enabled, if set, says whether this server serves the route at all
	// (Livy batches need Config.Batches); a disabled route answers 404.
	enabled func(*Config) bool
	// owner, if set, says which node must serve the request (ownerOf);
	// nil: this node. A request that matches no row (a wrong method, a
	// path below a route) takes the owner of the nearest route above it.
	owner func(s *Server, ctx *fasthttp.RequestCtx, seg []string) target
	// serve handles the request; a.seg is the decoded path, a.id and
	// a.sid the decoded {id} and {sid} (paramDecoders).
	serve func(s *Server, ctx *fasthttp.RequestCtx, a args)
	// doc is the route's OpenAPI operation for these limits.
	doc func(lim kvstore.Limits) apiOp

	name string // method + " " + pattern, set by init
}

type nodeKind int

const (
	nodeNone nodeKind = iota
	nodePath          // every method on the path is node-to-node
	nodeCall          // this method on the path is (also) node-to-node
)

// rddOp is a per-RDD operation's metric labels.
type rddOp struct{ op, kind string }

// args are what the router decoded from the path for a handler.
type args struct {
	seg []string
	id  int64 // {id} of /sessions/{id} (resolved) or /batches/{id}
	sid int   // {sid} of /sessions/{id}/statements/{sid}
}

// Labels of requests no route serves.
const (
	routeForwarded = "forwarded" // served by another node
	routeOther     = "other"     // refused before a route was chosen, or no route
)

// routes is the table, built once by init (a package-level literal
// would be an initialization cycle: the OpenAPI handler reads it).
var routes []*route

// routeByName finds a row by its name.
var routeByName map[string]*route

// livyPrefixes are the first segments of Livy's routes ("/sessions").
var livyPrefixes []string

func init() {
	routes = routeTable()
	routeByName = make(map[string]*route, len(routes))
	for _, r := range routes {
		r.name = r.method + " " + r.pattern
		if first, _, _ := strings.Cut(r.pattern[1:], "/"); r.livy && !slices.Contains(livyPrefixes, "/"+first) {
			livyPrefixes = append(livyPrefixes, "/"+first)
		}
		if _, dup := routeByName[r.name]; dup {
			panic("httpapi: route " + r.name + " is in the table twice")
		}
		routeByName[r.name] = r
	}
}

// always serves a constant operation description.
func always(op apiOp) func(kvstore.Limits) apiOp { return func(kvstore.Limits) apiOp { return op } }

func withBatches(c *Config) bool { return c.Batches != nil }

func routeTable() []*route {
	return []*route{
		// Operations.
		{method: "GET", pattern: "/healthz", rule: rulePublic, doc: docHealth,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.health(c) }},
		{method: "GET", pattern: "/readyz", rule: rulePublic, doc: docReady,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.ready(c) }},
		{method: "GET", pattern: "/version", livy: true, rule: rulePublic, doc: docVersion,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.version(c) }},
		{method: "GET", pattern: "/metrics", rule: ruleMetrics, doc: docMetrics,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.promH(c) }},
		// The API's description and the console's static files hold no
		// data: the console's data comes from API calls made with the
		// user's token.
		{method: "GET", pattern: "/openapi.json", rule: rulePublic, doc: docOpenAPI,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.openAPI(c) }},
		{method: "GET", pattern: "/ui", rule: rulePublic, doc: docUIIndex,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.uiIndex(c) }},
		{method: "GET", pattern: "/ui/{file}", rule: rulePublic, doc: docUIFile,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.uiFile(c, a.seg[1]) }},

		// The cluster. The node-to-node routes are cluster's protocol
		// (cluster/rpc.go), mounted here: its paths, its handlers.
		{method: "GET", pattern: "/v1/cluster", rule: ruleAny, doc: docCluster,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.clusterStatus(c) }},
		{method: "POST", pattern: cluster.JoinPath, rule: ruleAdmin, node: nodePath, nodeMay: true, doc: docClusterJoin,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.clusterJoin(c) }},
		{method: "POST", pattern: "/v1/cluster/admit", rule: ruleAdmin, doc: docClusterAdmit,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.clusterAdmit(c) }},
		{method: "DELETE", pattern: cluster.NodesPath + "{id}", rule: ruleAdmin, node: nodeCall, nodeMay: true, doc: docClusterRemove,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.clusterRemove(c, a.seg[3]) }},
		{method: "POST", pattern: cluster.ApplyPath, rule: ruleCluster, node: nodePath, doc: docInternalApply,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.internalApply(c) }},
		{method: "GET", pattern: cluster.IndexPath, rule: ruleCluster, node: nodePath, doc: docInternalIndex,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.internalIndex(c) }},
		{method: "GET", pattern: cluster.SilentPath, rule: ruleCluster, node: nodePath, doc: docInternalSilent,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.internalSilent(c) }},
		{method: "GET", pattern: cluster.CheckpointPath, rule: ruleCluster, node: nodePath, doc: docInternalCheckpoint,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.internalCheckpoint(c) }},

		// Shared RDDs and their keys.
		{method: "GET", pattern: "/v1/rdds", rule: ruleAny, doc: docRDDList,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) {
				if c.IsGet() && !scopeLocal(c) {
					s.listRDDsCluster(c)
					return
				}
				s.listRDDs(c)
			}},
		{method: "POST", pattern: "/v1/rdds", rule: ruleCreate, owner: (*Server).placeRDD, doc: docRDDCreate,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.createRDD(c) }},
		{method: "GET", pattern: "/v1/rdds/{name}", rule: ruleRead, capability: true, owner: (*Server).rddOwner, doc: docRDDGet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.describeRDD(c, a.seg[2]) }},
		{method: "DELETE", pattern: "/v1/rdds/{name}", rule: ruleWrite, owner: (*Server).rddOwner, doc: docRDDDrop,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.dropRDD(c, a.seg[2]) }},
		{method: "GET", pattern: "/v1/rdds/{name}/keys/{key}", rule: ruleRead, capability: true, op: rddOp{"get", "read"}, owner: (*Server).rddOwner, doc: docKeyGet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.getKey(c, a.seg[2], a.seg[4]) }},
		{method: "PUT", pattern: "/v1/rdds/{name}/keys/{key}", rule: ruleWrite, capability: true, op: rddOp{"put", "write"}, owner: (*Server).rddOwner, doc: docKeyPut,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.putKey(c, a.seg[2], a.seg[4]) }},
		{method: "DELETE", pattern: "/v1/rdds/{name}/keys/{key}", rule: ruleWrite, capability: true, op: rddOp{"delete", "write"}, owner: (*Server).rddOwner, doc: docKeyDelete,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.deleteKey(c, a.seg[2], a.seg[4]) }},
		{method: "POST", pattern: "/v1/rdds/{name}/get", rule: ruleRead, capability: true, op: rddOp{"batch_get", "read"}, owner: (*Server).rddOwner, doc: docBatchGet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.batchGet(c, a.seg[2]) }},
		{method: "POST", pattern: "/v1/rdds/{name}/set", rule: ruleWrite, capability: true, op: rddOp{"batch_set", "write"}, owner: (*Server).rddOwner, doc: docBatchSet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.batchSet(c, a.seg[2]) }},
		{method: "POST", pattern: "/v1/rdds/{name}/delete", rule: ruleWrite, capability: true, op: rddOp{"batch_delete", "write"}, owner: (*Server).rddOwner, doc: docBatchDelete,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.batchDelete(c, a.seg[2]) }},
		{method: "GET", pattern: "/v1/rdds/{name}/scan", rule: ruleRead, capability: true, op: rddOp{"scan", "read"}, owner: (*Server).rddOwner, doc: docRDDScan,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.scanRDD(c, a.seg[2]) }},
		{method: "GET", pattern: "/v1/rdds/{name}/count", rule: ruleRead, capability: true, op: rddOp{"count", "read"}, owner: (*Server).rddOwner, doc: docRDDCount,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.countRDD(c, a.seg[2]) }},
		{method: "POST", pattern: "/v1/rdds/{name}/load", rule: ruleWrite, op: rddOp{"load", "bulk"}, owner: (*Server).rddOwner, doc: docRDDLoad,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.loadRDD(c, a.seg[2]) }},
		{method: "POST", pattern: "/v1/rdds/{name}/save", rule: ruleWrite, op: rddOp{"save", "bulk"}, owner: (*Server).rddOwner, doc: docRDDSave,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.saveRDD(c, a.seg[2]) }},
		{method: "POST", pattern: "/v1/rdds/{name}/checkpoint", rule: ruleWrite, owner: (*Server).rddOwner, doc: docRDDCheckpoint,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.checkpointRDD(c, a.seg[2]) }},

		// Livy sessions and statements.
		{method: "GET", pattern: "/sessions", livy: true, rule: ruleAny, doc: docSessionList,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) {
				if c.IsGet() && !scopeLocal(c) {
					s.listSessionsCluster(c)
					return
				}
				s.listSessions(c)
			}},
		{method: "POST", pattern: "/sessions", livy: true, rule: ruleCode, owner: (*Server).placeCreation, doc: docSessionNew,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.createSession(c) }},
		{method: "GET", pattern: "/sessions/{id}", livy: true, rule: ruleSessionView, owner: (*Server).sessionOwner, doc: docSessionGet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.getSession(c, a.id) }},
		{method: "DELETE", pattern: "/sessions/{id}", livy: true, rule: ruleSessionModify, owner: (*Server).sessionOwner, doc: docSessionDel,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.deleteSession(c, a.id) }},
		{method: "GET", pattern: "/sessions/{id}/state", livy: true, rule: ruleSessionView, owner: (*Server).sessionOwner, doc: docSessionState,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.sessionState(c, a.id) }},
		{method: "GET", pattern: "/sessions/{id}/spark-connect", rule: ruleSessionView, owner: (*Server).sessionOwner, doc: docSessionConnect,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.connectStreams(c, a.id) }},
		{method: "GET", pattern: "/sessions/{id}/log", livy: true, rule: ruleSessionView, owner: (*Server).sessionOwner, doc: docSessionLog,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.sessionLog(c, a.id) }},
		{method: "GET", pattern: "/sessions/{id}/statements", livy: true, rule: ruleSessionView, owner: (*Server).sessionOwner, doc: docStmtList,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.listStatements(c, a.id) }},
		{method: "POST", pattern: "/sessions/{id}/statements", livy: true, rule: ruleSessionCode, owner: (*Server).sessionOwner, doc: docStmtNew,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.submitStatement(c, a.id) }},
		{method: "GET", pattern: "/sessions/{id}/statements/{sid}", livy: true, rule: ruleSessionView, owner: (*Server).sessionOwner, doc: docStmtGet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.getStatement(c, a.id, a.sid) }},
		{method: "POST", pattern: "/sessions/{id}/statements/{sid}/cancel", livy: true, rule: ruleSessionModify, owner: (*Server).sessionOwner, doc: docStmtCancel,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.cancelStatement(c, a.id, a.sid) }},
		{method: "POST", pattern: "/sessions/{id}/completion", livy: true, rule: ruleSessionCode, owner: (*Server).sessionOwner, doc: docCompletion,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.complete(c, a.id) }},

		// Livy batches: running one is running code, as a session is; the
		// owner and the ACLs rule the rest, as for sessions. The registry
		// answers a batch's state; its node, the rest (batchOwner).
		{method: "GET", pattern: "/batches", livy: true, rule: ruleAny, enabled: withBatches, doc: docBatchesList,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.listBatches(c) }},
		{method: "POST", pattern: "/batches", livy: true, rule: ruleCode, enabled: withBatches, owner: (*Server).placeCreation, doc: docBatchesNew,
			serve: func(s *Server, c *fasthttp.RequestCtx, _ args) { s.createBatch(c) }},
		{method: "GET", pattern: "/batches/{id}", livy: true, rule: ruleSessionView, enabled: withBatches, owner: (*Server).batchOwner, doc: docBatchesGet,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.getBatch(c, a.id) }},
		{method: "DELETE", pattern: "/batches/{id}", livy: true, rule: ruleSessionModify, enabled: withBatches, owner: (*Server).batchOwner, doc: docBatchesDel,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.deleteBatch(c, a.id) }},
		{method: "GET", pattern: "/batches/{id}/state", livy: true, rule: ruleSessionView, enabled: withBatches, doc: docBatchesState,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.batchState(c, a.id) }},
		{method: "GET", pattern: "/batches/{id}/log", livy: true, rule: ruleSessionView, enabled: withBatches, owner: (*Server).batchOwner, doc: docBatchesLog,
			serve: func(s *Server, c *fasthttp.RequestCtx, a args) { s.batchLog(c, a.id) }},
	}
}

// paramDecoders turn a path parameter into the value handlers take,
// keyed by the pattern up to the parameter. A decoder answers the error
// itself and reports false. Eager decoders run as soon as the router
// reaches the parameter, even on a path no route matches (a session that
// does not exist answers session_not_found on any path below it); lazy
// ones only when the path is not longer than the routes below it.
var paramDecoders = map[string]paramDecoder{
	"/sessions/{id}": {eager: true, decode: func(s *Server, ctx *fasthttp.RequestCtx, raw string) (int64, bool) {
		id, err := s.cfg.Sessions.Resolve(raw)
		if err != nil {
			fail(ctx, err)
			return 0, false
		}
		return id, true
	}},
	"/sessions/{id}/statements/{sid}": {decode: func(_ *Server, ctx *fasthttp.RequestCtx, raw string) (int64, bool) {
		sid, err := strconv.Atoi(raw)
		if err != nil {
			badRequest(ctx, "statement id must be a number: "+strconv.Quote(raw))
			return 0, false
		}
		return int64(sid), true
	}},
	"/batches/{id}": {eager: true, decode: func(_ *Server, ctx *fasthttp.RequestCtx, raw string) (int64, bool) {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id < 0 {
			badRequest(ctx, "batch id must be a non-negative number: "+strconv.Quote(raw))
			return 0, false
		}
		return id, true
	}},
}

type paramDecoder struct {
	eager  bool
	decode func(s *Server, ctx *fasthttp.RequestCtx, raw string) (int64, bool)
}

// scopeLocal reports whether a read asks for this node's own view
// (?scope=local) rather than the cluster's.
func scopeLocal(ctx *fasthttp.RequestCtx) bool {
	return string(ctx.QueryArgs().Peek("scope")) == "local"
}
