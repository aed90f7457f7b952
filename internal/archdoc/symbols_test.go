package archdoc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/srdd/srdd/internal/testutil"
)

// Docs that cannot lie (issue 23): docs/ARCHITECTURE.md and every
// DESIGN.md may name code only as it is. A backticked dotted name whose
// first part is a Go package or a Go or Python type of the tree
// (`cluster.Node.Apply`, `Store.flushSets`, `Server._dispatch`) must name
// a member that exists; a backticked file path (`cluster/fsm.go`,
// `durable.go` in kvstore/DESIGN.md) must exist.

var (
	backtickRe = regexp.MustCompile("`([^`\n]+)`")
	dottedRe   = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?$`)
	pathRe     = regexp.MustCompile(`^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?$`)
	pyClassRe  = regexp.MustCompile(`(?m)^class ([A-Za-z_][A-Za-z0-9_]*)\b`)
	pySelfRe   = regexp.MustCompile(`self\.([A-Za-z_][A-Za-z0-9_]*)\s*[:=]`)
	pyDefRe    = regexp.MustCompile(`(?m)^(\s*)def ([A-Za-z_][A-Za-z0-9_]*)\(|^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*[:=]`)
	sourceExts = map[string]bool{".go": true, ".py": true, ".md": true, ".yml": true, ".yaml": true, ".json": true,
		".sh": true, ".js": true, ".html": true, ".css": true, ".txt": true, ".toml": true, ".service": true, ".env": true, ".png": true}
)

// protocolOps are the namespaces of the interpreter protocol's op names
// (`kv.get`, `rdd.create`, `path.gc`, `connect.start`: sparkbridge/DESIGN.md), which are
// wire names, not code, whatever type shares the word.
var protocolOps = map[string]bool{"kv": true, "rdd": true, "path": true, "connect": true}

// symbols is what the tree defines, by scope: a Go package name or a Go
// or Python type name maps to the names defined in it (functions,
// types, variables, constants of a package; methods and fields of a type;
// methods and attributes of a class).
type symbols map[string]map[string]bool

func (s symbols) add(scope, name string) {
	if s[scope] == nil {
		s[scope] = map[string]bool{}
	}
	s[scope][name] = true
}

// has reports whether scope.path resolves: each part a member of the
// scope before it (a type found in a package opens its own scope).
func (s symbols) has(scope string, parts []string) bool {
	for i, p := range parts {
		if !s[scope][p] {
			return false
		}
		if i < len(parts)-1 {
			if s[p] == nil {
				return true // a field or value of a type the index does not follow
			}
			scope = p
		}
	}
	return true
}

func index(t *testing.T, root string) (symbols, map[string]bool) {
	t.Helper()
	syms := symbols{}
	files := map[string]bool{} // repo-relative paths, and base names
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".venv", ".venv-airflow", ".venv-connect", "node_modules", "__pycache__", ".pytest_cache", "data", "bin":
				if rel != "." {
					return filepath.SkipDir
				}
			}
			files[filepath.ToSlash(rel)] = true
			return nil
		}
		files[filepath.ToSlash(rel)] = true
		files[d.Name()] = true
		switch filepath.Ext(path) {
		case ".go":
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return nil // not ours to judge here; the build does
			}
			indexGo(syms, f)
		case ".py":
			b, err := os.ReadFile(path)
			if err == nil {
				indexPython(syms, strings.TrimSuffix(d.Name(), ".py"), string(b))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return syms, files
}

func indexGo(syms symbols, f *ast.File) {
	pkg := f.Name.Name
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil || len(d.Recv.List) == 0 {
				syms.add(pkg, d.Name.Name)
				continue
			}
			recv := d.Recv.List[0].Type
			for {
				switch r := recv.(type) {
				case *ast.StarExpr:
					recv = r.X
					continue
				case *ast.IndexExpr:
					recv = r.X
					continue
				case *ast.IndexListExpr:
					recv = r.X
					continue
				}
				break
			}
			if id, ok := recv.(*ast.Ident); ok {
				syms.add(id.Name, d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					syms.add(pkg, s.Name.Name)
					if syms[s.Name.Name] == nil {
						syms[s.Name.Name] = map[string]bool{}
					}
					switch st := s.Type.(type) {
					case *ast.StructType:
						for _, fld := range st.Fields.List {
							for _, n := range fld.Names {
								syms.add(s.Name.Name, n.Name)
							}
							if len(fld.Names) == 0 { // embedded: its name
								if id := embeddedName(fld.Type); id != "" {
									syms.add(s.Name.Name, id)
								}
							}
						}
					case *ast.InterfaceType:
						for _, m := range st.Methods.List {
							for _, n := range m.Names {
								syms.add(s.Name.Name, n.Name)
							}
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						syms.add(pkg, n.Name)
					}
				}
			}
		}
	}
}

func embeddedName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.StarExpr:
		return embeddedName(x.X)
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return ""
}

// indexPython records each class's methods and attributes (indented
// defs and assignments under it) and the module's top-level names.
func indexPython(syms symbols, module, src string) {
	class := ""
	for _, line := range strings.Split(src, "\n") {
		if m := pyClassRe.FindStringSubmatch(line); m != nil {
			class = m[1]
			if syms[class] == nil {
				syms[class] = map[string]bool{}
			}
			continue
		}
		if line != "" && line[0] != ' ' && line[0] != '\t' && line[0] != '#' && line[0] != ')' && line[0] != ']' {
			class = ""
		}
		m := pyDefRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, indent := m[2], m[1]
		if name == "" {
			name, indent = m[4], m[3]
		}
		switch {
		case class != "" && indent != "":
			syms.add(class, name)
			// A doc may name a method through the module of its class
			// (`engine.fetch_indexes`, `store.df`).
			syms.add(module, name)
		case indent == "":
			syms.add(module, name)
		}
		if attr := pySelfRe.FindStringSubmatch(line); attr != nil && class != "" {
			syms.add(class, attr[1])
		}
	}
}

// designDocs are the pages whose names are checked.
func designDocs(t *testing.T, root string) []string {
	docs := []string{filepath.Join(root, "docs", "ARCHITECTURE.md")}
	more, err := filepath.Glob(filepath.Join(root, "*", "DESIGN.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append(docs, more...)
}

// checkName reports what is wrong with one backticked span of a doc in
// dir (repo-relative), or "".
func checkName(syms symbols, files map[string]bool, dir, span string) string {
	if m := dottedRe.FindStringSubmatch(span); m != nil {
		scope := m[1]
		parts := strings.Split(strings.TrimPrefix(m[2], "."), ".")
		if ext := "." + parts[len(parts)-1]; len(parts) == 1 && sourceExts[ext] {
			return checkFile(files, dir, span)
		}
		if syms[scope] == nil || protocolOps[scope] {
			return "" // not a package or type of the tree: a Spark key, an example, a host, an op
		}
		if !syms.has(scope, parts) {
			return "names " + span + ", which the code does not define"
		}
		return ""
	}
	if strings.Contains(span, "/") && pathRe.MatchString(span) && !strings.HasPrefix(span, "/") {
		last := span[strings.LastIndex(strings.TrimSuffix(span, "/"), "/")+1:]
		if strings.HasSuffix(span, "/") || sourceExts[filepath.Ext(last)] {
			return checkFile(files, dir, span)
		}
	}
	return ""
}

// checkFile: a path names a file or directory of the tree, from the
// root, from the doc's directory, or as the end of a longer path
// (`srdd_interpreter/rules.py`); a bare name, any file of that name.
func checkFile(files map[string]bool, dir, span string) string {
	p := strings.TrimSuffix(span, "/")
	if files[p] || files[filepath.ToSlash(filepath.Join(dir, p))] {
		return ""
	}
	for f := range files {
		if strings.HasSuffix(f, "/"+p) {
			return ""
		}
	}
	return "names file " + span + ", which does not exist"
}

func TestDocsNameOnlyWhatExists(t *testing.T) {
	root := testutil.RepoRoot(t)
	syms, files := index(t, root)
	if len(syms["cluster"]) == 0 || !syms["Node"]["Apply"] || !syms["SharedRDD"]["set"] {
		t.Fatalf("the index misses known symbols (cluster %d names; Node.Apply %v; SharedRDD.set %v)",
			len(syms["cluster"]), syms["Node"]["Apply"], syms["SharedRDD"]["set"])
	}
	checked := 0
	for _, doc := range designDocs(t, root) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		dir := filepath.ToSlash(filepath.Dir(rel))
		inFence := false
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inFence = !inFence
				continue
			}
			if inFence {
				continue
			}
			for _, m := range backtickRe.FindAllStringSubmatch(line, -1) {
				checked++
				if msg := checkName(syms, files, dir, m[1]); msg != "" {
					t.Errorf("%s:%d %s", rel, i+1, msg)
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("checked only %d backticked names: is the scan reading the docs?", checked)
	}
}

func TestCheckName(t *testing.T) {
	syms := symbols{}
	syms.add("cluster", "Node")
	syms.add("Node", "Apply")
	syms.add("Store", "flushSets")
	syms["Store"]["flushSets"] = true
	files := map[string]bool{"cluster/fsm.go": true, "kvstore/durable.go": true, "deploy": true,
		"sparkbridge/python/srdd_interpreter/rules.py": true}
	f := func(dir, span string, bad bool) {
		t.Helper()
		if got := checkName(syms, files, dir, span); (got != "") != bad {
			t.Errorf("checkName(%q, %q) = %q, want bad=%v", dir, span, got, bad)
		}
	}
	f("docs", "cluster.Node.Apply", false)
	f("docs", "cluster.Node.Gone", true)
	f("docs", "Store.flushSets", false)
	f("docs", "Store.GetManyAt", true)
	f("docs", "Store.flushSets()", false)
	f("docs", "spark.srdd.kv.cacheMiB", false) // not a package or type
	syms.add("rdd", "x")
	f("docs", "rdd.create", false) // an interpreter op
	f("docs", "cluster/fsm.go", false)
	f("docs", "cluster/gone.go", true)
	f("kvstore", "durable.go", false)
	f("kvstore", "gone.go", true)
	f("docs", "deploy/", false)
	f("docs", "/internal/v1/apply", false) // an HTTP path
	f("docs", "srdd://node/<id>", false)
	f("kvstore", "srdd_interpreter/rules.py", false)
	f("kvstore", "srdd_interpreter/gone.py", true)
}
