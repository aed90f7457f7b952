package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// TestEveryRouteHasARule walks every route constant (metrics.go) and
// fails on any route without exactly one permission rule, or on a rule
// for a route that does not exist.
func TestEveryRouteHasARule(t *testing.T) {
	fs := token.NewFileSet()
	f, err := parser.ParseFile(fs, "metrics.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "route") || i >= len(vs.Values) {
				continue
			}
			lit, ok := vs.Values[i].(*ast.BasicLit)
			if !ok {
				continue
			}
			v, _ := strconv.Unquote(lit.Value)
			routes[v] = true
		}
		return true
	})
	if len(routes) < 30 {
		t.Fatalf("found only %d route constants; the walk is broken", len(routes))
	}
	inAll := map[string]bool{}
	for _, r := range allRoutes {
		inAll[r] = true
	}
	for r := range routes {
		if r == routeForwarded || r == routeOther {
			continue // not routes: labels of requests served elsewhere or refused
		}
		if _, ok := permissions[r]; !ok {
			t.Errorf("route %q has no permission rule", r)
		}
		if !inAll[r] {
			t.Errorf("route %q is not in allRoutes", r)
		}
	}
	for r := range permissions {
		if !routes[r] {
			t.Errorf("permission rule for unknown route %q", r)
		}
	}
}
