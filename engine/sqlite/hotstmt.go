package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// hotStmts runs the ingest path's statements on the writer's driver
// connection itself. Through database/sql each statement costs a Stmt
// bound to the transaction, a lock, and a goroutine watching the context
// (two for a query: database/sql's and the driver's), several times a
// webhook on the one goroutine every write waits for.
//
// The statements belong to conn, which the DB holds for its whole life, so
// database/sql gives that connection to nobody else. They are used only by
// the writer goroutine, between its own database/sql calls on conn, so the
// two never run at once.
type hotStmts struct {
	conn  *sql.Conn
	stmts map[string]driver.Stmt
}

func (h *hotStmts) prepare(ctx context.Context, conn *sql.Conn, queries []string) error {
	h.conn, h.stmts = conn, make(map[string]driver.Stmt, len(queries))
	return conn.Raw(func(dc any) error {
		p, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("the SQLite driver connection %T cannot prepare statements", dc)
		}
		for _, q := range queries {
			s, err := p.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare %q: %w", q, err)
			}
			if _, ok := s.(driver.StmtExecContext); !ok {
				return fmt.Errorf("the SQLite driver statement %T cannot run with a context", s)
			}
			if _, ok := s.(driver.StmtQueryContext); !ok {
				return fmt.Errorf("the SQLite driver statement %T cannot query with a context", s)
			}
			h.stmts[q] = s
		}
		return nil
	})
}

func (h *hotStmts) close() {
	if h.conn == nil {
		return
	}
	_ = h.conn.Raw(func(any) error {
		for _, s := range h.stmts {
			s.Close()
		}
		return nil
	})
	h.stmts = nil
}

// driverArgs converts arguments as database/sql would (a driver.Valuer, an int).
func driverArgs(args []any) ([]driver.NamedValue, error) {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out, nil
}

// The statements run without the caller's context: a write, once the
// writer has taken it, runs to its end (see DB.update), and a context
// watched by the driver costs a goroutine per statement.
func (h *hotStmts) exec(s driver.Stmt, args []any) (sql.Result, error) {
	nv, err := driverArgs(args)
	if err != nil {
		return nil, err
	}
	return s.(driver.StmtExecContext).ExecContext(context.Background(), nv)
}

func (h *hotStmts) query(s driver.Stmt, args []any) (*hotRows, error) {
	nv, err := driverArgs(args)
	if err != nil {
		return nil, err
	}
	r, err := s.(driver.StmtQueryContext).QueryContext(context.Background(), nv)
	if err != nil {
		return nil, err
	}
	return &hotRows{rows: r, vals: make([]driver.Value, len(r.Columns()))}, nil
}

// hotRows is the part of *sql.Rows the ingest path uses.
type hotRows struct {
	rows   driver.Rows
	vals   []driver.Value
	err    error
	done   bool
	closed bool
}

func (r *hotRows) Next() bool {
	if r.done {
		return false
	}
	if err := r.rows.Next(r.vals); err != nil {
		r.done = true
		if !errors.Is(err, io.EOF) {
			r.err = err
		}
		r.Close()
		return false
	}
	return true
}

func (r *hotRows) Scan(dest ...any) error {
	if len(dest) != len(r.vals) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(r.vals))
	}
	for i, d := range dest {
		if err := assign(d, r.vals[i]); err != nil {
			return fmt.Errorf("scan column %d: %w", i, err)
		}
	}
	return nil
}

func (r *hotRows) Err() error { return r.err }

func (r *hotRows) Close() error {
	r.done = true
	if r.closed {
		return nil
	}
	r.closed = true
	return r.rows.Close()
}

// hotRow is the part of *sql.Row the ingest path uses.
type hotRow struct {
	rows *hotRows
	err  error
}

func (r hotRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if r.rows.err != nil {
			return r.rows.err
		}
		return sql.ErrNoRows
	}
	return r.rows.Scan(dest...)
}

// assign stores a value SQLite returned (int64, float64, string, []byte or
// nil) in one of the destination types the ingest path scans into.
func assign(dest any, v driver.Value) error {
	switch d := dest.(type) {
	case *int64:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("%T is not an integer", v)
		}
		*d = n
	case *int:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("%T is not an integer", v)
		}
		*d = int(n)
	case *bool:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("%T is not a boolean", v)
		}
		*d = n != 0
	case *string:
		switch x := v.(type) {
		case string:
			*d = x
		case []byte:
			*d = string(x)
		default:
			return fmt.Errorf("%T is not text", v)
		}
	case *[]byte:
		switch x := v.(type) {
		case []byte:
			*d = append((*d)[:0:0], x...)
		case string:
			*d = []byte(x)
		case nil:
			*d = nil
		default:
			return fmt.Errorf("%T is not a blob", v)
		}
	case sql.Scanner:
		return d.Scan(v)
	default:
		return fmt.Errorf("cannot scan into %T", dest)
	}
	return nil
}
