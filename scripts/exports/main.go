// Command exports counts the exported top-level names (functions, types,
// variables, constants) of each package of the module, and lists those no
// other package's non-test file refers to: candidates to unexport or
// delete. A name only another package's tests use is listed as such.
// Methods and struct fields are not counted: telling their uses apart
// needs type information, and this stays a go/ast walk with no tool from
// outside.
//
// Usage: go run ./scripts/exports [-v] [-pkg PATH-PREFIX] [dir]
//
// dir is the module's root (default "."). -v lists the names; -pkg keeps
// the packages whose import path, relative to the module, starts with the
// prefix ("internal/proc", "jmx").
package main

import (
	"bufio"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// pkg is one directory's package.
type pkg struct {
	rel      string          // path relative to the module root: "internal/proc"
	main     bool            // a command: its exported names are nobody's API
	exported map[string]bool // exported top-level name → seen
}

// use is how other packages refer to a name.
type use struct{ code, tests bool }

func main() {
	verbose := flag.Bool("v", false, "list the names unused outside their package")
	only := flag.String("pkg", "", "report only packages whose relative path starts with this")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	if err := run(root, *only, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "exports:", err)
		os.Exit(1)
	}
}

func run(root, only string, verbose bool) error {
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	pkgs := map[string]*pkg{}           // import path → package
	uses := map[string]map[string]use{} // import path → name → use
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		importPath := module
		if rel != "." {
			importPath = module + "/" + filepath.ToSlash(rel)
		}
		test := strings.HasSuffix(path, "_test.go")
		if !test {
			p := pkgs[importPath]
			if p == nil {
				p = &pkg{rel: filepath.ToSlash(rel), exported: map[string]bool{}}
				pkgs[importPath] = p
			}
			p.main = f.Name.Name == "main"
			for _, name := range exportedNames(f) {
				p.exported[name] = true
			}
		}
		recordUses(f, importPath, test, uses)
		return nil
	})
	if err != nil {
		return err
	}
	return report(pkgs, uses, only, verbose)
}

// exportedNames are the file's exported top-level names.
func exportedNames(f *ast.File) []string {
	var out []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.IsExported() {
				out = append(out, d.Name.Name)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						out = append(out, s.Name.Name)
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() {
							out = append(out, n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// recordUses notes every pkg.Name of the file whose pkg is an import of
// the module other than the file's own package.
func recordUses(f *ast.File, self string, test bool, uses map[string]map[string]use) {
	local := map[string]string{} // name in the file → import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		local[name] = path
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		path, ok := local[id.Name]
		if !ok || path == self {
			return true
		}
		m := uses[path]
		if m == nil {
			m = map[string]use{}
			uses[path] = m
		}
		u := m[sel.Sel.Name]
		if test {
			u.tests = true
		} else {
			u.code = true
		}
		m[sel.Sel.Name] = u
		return true
	})
}

func report(pkgs map[string]*pkg, uses map[string]map[string]use, only string, verbose bool) error {
	paths := make([]string, 0, len(pkgs))
	for p := range pkgs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	var total, unused int
	fmt.Fprintf(w, "%-28s %8s %8s %10s\n", "package", "exported", "unused", "tests only")
	for _, path := range paths {
		p := pkgs[path]
		if p.main || !strings.HasPrefix(p.rel, only) {
			continue
		}
		names := make([]string, 0, len(p.exported))
		for n := range p.exported {
			names = append(names, n)
		}
		sort.Strings(names)
		var none, testOnly []string
		for _, n := range names {
			switch u := uses[path][n]; {
			case u.code:
			case u.tests:
				testOnly = append(testOnly, n)
			default:
				none = append(none, n)
			}
		}
		total += len(names)
		unused += len(none) + len(testOnly)
		fmt.Fprintf(w, "%-28s %8d %8d %10d\n", p.rel, len(names), len(none)+len(testOnly), len(testOnly))
		if verbose {
			for _, n := range none {
				fmt.Fprintf(w, "    %s\n", n)
			}
			for _, n := range testOnly {
				fmt.Fprintf(w, "    %s (other packages' tests only)\n", n)
			}
		}
	}
	fmt.Fprintf(w, "%-28s %8d %8d\n", "total", total, unused)
	return nil
}

// modulePath reads the module line of go.mod.
func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}
