package httpapi

import (
	"strings"

	"github.com/valyala/fasthttp"
)

// The router: the route table (routes.go) as a tree of path segments,
// built once per server by New. Matching a request walks the tree, one
// map lookup per segment, and allocates nothing.

// pathNode is one segment of the tree.
type pathNode struct {
	lits    map[string]*pathNode // literal children
	param   *pathNode            // the {x} child, if any
	seg     string               // this segment of the pattern, e.g. "{id}"
	depth   int                  // segments from the root
	decoder *paramDecoder        // decodes this {x}, if paramDecoders names it
	rddName bool                 // this {name} is the shared RDD's name
	// decodes: this node or one above it has a decoder.
	decodes bool
	// maxBelow is how many segments the longest route below adds.
	maxBelow int

	get, post, put, del *route

	allow    string // the methods of this path, for 405's Allow
	public   bool   // a public route is here: a caller may be anonymous
	nodePath bool   // every method on this path is node-to-node
	// owner is the owner resolver of a request here that no row matches
	// (a wrong method, a path below the routes): the first of the routes
	// here that has one, else the nearest above.
	owner func(s *Server, ctx *fasthttp.RequestCtx, seg []string) target
}

// row is the route for method m at this path, HEAD served by GET.
func (n *pathNode) row(m string) *route {
	switch m {
	case "GET", "HEAD":
		return n.get
	case "POST":
		return n.post
	case "PUT":
		return n.put
	case "DELETE":
		return n.del
	}
	return nil
}

// newRouter builds the tree of the routes cfg enables.
func newRouter(cfg *Config) *pathNode {
	root := &pathNode{}
	for _, r := range routes {
		if r.enabled != nil && !r.enabled(cfg) {
			continue
		}
		n, prefix := root, ""
		for _, p := range strings.Split(strings.TrimPrefix(r.pattern, "/"), "/") {
			prefix += "/" + p
			if strings.HasPrefix(p, "{") {
				if n.param == nil {
					n.param = &pathNode{seg: p, depth: n.depth + 1, rddName: prefix == "/v1/rdds/{name}"}
					if d, ok := paramDecoders[prefix]; ok {
						n.param.decoder = &d
					}
				} else if n.param.seg != p {
					panic("httpapi: " + r.pattern + " names a parameter " + n.param.seg + " another route names " + p)
				}
				n = n.param
				continue
			}
			if n.lits == nil {
				n.lits = map[string]*pathNode{}
			}
			next := n.lits[p]
			if next == nil {
				next = &pathNode{seg: p, depth: n.depth + 1}
				n.lits[p] = next
			}
			n = next
		}
		slot := map[string]**route{"GET": &n.get, "POST": &n.post, "PUT": &n.put, "DELETE": &n.del}[r.method]
		if slot == nil || *slot != nil {
			panic("httpapi: bad or repeated method in route " + r.name)
		}
		*slot = r
	}
	root.finish(nil)
	return root
}

// finish derives what the router needs of each node from its routes,
// top down (owner, decodes) and bottom up (maxBelow).
func (n *pathNode) finish(parent *pathNode) int {
	var allow []string
	for _, r := range []*route{n.get, n.post, n.put, n.del} { // Allow's order
		if r == nil {
			continue
		}
		allow = append(allow, r.method)
		n.public = n.public || r.rule == rulePublic
		n.nodePath = n.nodePath || r.node == nodePath
		if n.owner == nil && r.owner != nil {
			n.owner = r.owner
		}
	}
	n.allow = strings.Join(allow, ", ")
	if parent != nil {
		if n.owner == nil {
			n.owner = parent.owner
		}
		n.decodes = parent.decodes
	}
	n.decodes = n.decodes || n.decoder != nil
	below := 0
	for _, c := range n.lits {
		below = max(below, 1+c.finish(n))
	}
	if n.param != nil {
		below = max(below, 1+n.param.finish(n))
	}
	n.maxBelow = below
	return below
}

// match is where a path leads in the tree.
type match struct {
	node *pathNode // the node of the whole path; nil if no route has it
	last *pathNode // the deepest node the path reached
	rdd  string    // the {name} of /v1/rdds/{name}/..., if the path has one
}

// match walks the tree along seg.
func (n *pathNode) match(seg []string) match {
	var m match
	for _, p := range seg {
		next := n.lits[p]
		if next == nil {
			next = n.param
		}
		if next == nil {
			m.last = n
			return m
		}
		if next.rddName {
			m.rdd = p
		}
		n = next
	}
	m.last = n
	if n.allow != "" { // a node between routes (/v1) is no route
		m.node = n
	}
	return m
}

// nodeOnly reports whether the request is one nodes make on each other,
// not clients: any path under /internal/, and the routes the table marks.
func (m match) nodeOnly(method string, seg []string) bool {
	if len(seg) > 0 && seg[0] == "internal" {
		return true
	}
	if m.node == nil {
		return false
	}
	if m.node.nodePath {
		return true
	}
	r := m.node.row(method)
	return r != nil && r.method == method && r.node == nodeCall
}

// mayBeAnonymous reports whether the request can reach the permission
// check without a principal: public paths and node-to-node calls.
func (m match) mayBeAnonymous(method string, seg []string) bool {
	return (m.node != nil && m.node.public) || m.nodeOnly(method, seg)
}

// ownerOf says which node must serve this request, before it is
// dispatched: the owner resolver of its route, or, for a request no
// route matches, of the nearest route above it.
func (s *Server) ownerOf(ctx *fasthttp.RequestCtx, m match, method string, seg []string) target {
	own := m.last.owner
	if m.node != nil {
		if r := m.node.row(method); r != nil {
			own = r.owner
		}
	}
	if own == nil {
		return target{}
	}
	return own(s, ctx, seg)
}

// dispatch decodes the path's parameters, picks the route for the
// method (404, 405 otherwise), authorizes the caller and serves it. It
// returns the route's name, or routeOther.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx, m match, method string, seg []string) string {
	a := args{seg: seg}
	if m.last.decodes {
		n := s.router
		for i := 0; i < m.last.depth; i++ {
			next := n.lits[seg[i]]
			if next == nil {
				next = n.param
			}
			n = next
			if d := n.decoder; d != nil && (d.eager || len(seg)-n.depth <= n.maxBelow) {
				v, ok := d.decode(s, ctx, seg[i])
				if !ok {
					return routeOther
				}
				if n.seg == "{sid}" {
					a.sid = int(v)
				} else {
					a.id = v
				}
			}
		}
	}
	if m.node == nil {
		notFoundRoute(ctx)
		return routeOther
	}
	r := m.node.row(method)
	if r == nil {
		methodNotAllowed(ctx, m.node.allow)
		return routeOther
	}
	if s.authorize(ctx, r, m.rdd) {
		r.serve(s, ctx, a)
	}
	return r.name
}
