// Command funcsize lists the non-test functions of a Go tree that are longer
// than a number of lines or more complex than a cyclomatic bound, so the size
// rule of docs/ARCHITECTURE.md can be checked without a tool from outside.
//
// Usage: go run ./scripts/funcsize [-lines 80] [-complexity 30] [dir]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type fn struct {
	pos        string
	name       string
	lines      int
	complexity int
}

func main() {
	maxLines := flag.Int("lines", 80, "report functions longer than this many lines")
	maxComplexity := flag.Int("complexity", 30, "report functions whose cyclomatic complexity exceeds this")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	fns, err := collect(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "funcsize:", err)
		os.Exit(1)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].lines > fns[j].lines })
	var over80, over100, overC int
	for _, f := range fns {
		long, complex := f.lines > *maxLines, f.complexity > *maxComplexity
		if f.lines > 100 {
			over100++
		}
		if long {
			over80++
		}
		if complex {
			overC++
		}
		if long || complex {
			fmt.Printf("%4d lines  complexity %3d  %s  %s\n", f.lines, f.complexity, f.name, f.pos)
		}
	}
	fmt.Printf("functions: %d; over %d lines: %d; over 100 lines: %d; complexity over %d: %d\n",
		len(fns), *maxLines, over80, over100, *maxComplexity, overC)
}

func collect(root string) ([]fn, error) {
	var fns []fn
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range file.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
			fns = append(fns, fn{
				pos:        fmt.Sprintf("%s:%d", path, start.Line),
				name:       funcName(fd),
				lines:      end.Line - start.Line + 1,
				complexity: cyclomatic(fd),
			})
		}
		return nil
	})
	return fns, err
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// cyclomatic counts decision points as gocyclo does: 1 + if, for, range,
// non-default case, comm clause, && and ||. Function literals count toward
// the function that holds them.
func cyclomatic(fd *ast.FuncDecl) int {
	c := 1
	ast.Inspect(fd, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt:
			c++
		case *ast.CaseClause:
			if n.List != nil {
				c++
			}
		case *ast.CommClause:
			if n.Comm != nil {
				c++
			}
		case *ast.BinaryExpr:
			if n.Op == token.LAND || n.Op == token.LOR {
				c++
			}
		}
		return true
	})
	return c
}
