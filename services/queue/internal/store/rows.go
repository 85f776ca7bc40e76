package store

import (
	"strings"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
)

// colType is the type of a column of a rowSet.
type colType int

const (
	colText colType = iota
	colInt
	colTime
)

// pgArray is the PostgreSQL array type of a column of t.
func (t colType) pgArray() string {
	switch t {
	case colInt:
		return "bigint[]"
	case colTime:
		return "timestamptz[]"
	default:
		return "text[]"
	}
}

// rowSet is a set of rows passed as parameters, for multi-row statements.
// On PostgreSQL it goes as one array per column, unnested: the statement
// text is the same for any number of rows, so it is planned and prepared
// once (a VALUES list of 64 rows takes longer to plan than to run). On
// SQLite, which has no arrays and plans cheaply, it is a VALUES list.
type rowSet struct {
	types []colType
	cols  []any // per column: []string, []int64 or []time.Time
	n     int
}

func newRowSet(types ...colType) *rowSet {
	r := &rowSet{types: types, cols: make([]any, len(types))}
	for i, t := range types {
		switch t {
		case colText:
			r.cols[i] = []string(nil)
		case colInt:
			r.cols[i] = []int64(nil)
		case colTime:
			r.cols[i] = []time.Time(nil)
		}
	}
	return r
}

// add appends a row: a string, int64 or time.Time per column, by type.
func (r *rowSet) add(vals ...any) {
	for i, v := range vals {
		switch c := r.cols[i].(type) {
		case []string:
			r.cols[i] = append(c, v.(string))
		case []int64:
			r.cols[i] = append(c, v.(int64))
		case []time.Time:
			r.cols[i] = append(c, v.(time.Time))
		}
	}
	r.n++
}

// source returns the SQL of the rows (with `?` placeholders) and its
// arguments, for `WITH name (columns) AS (source)`.
func (r *rowSet) source(d pstore.Dialect) (string, []any) {
	if d == pstore.Postgres {
		casts := make([]string, len(r.types))
		for i, t := range r.types {
			casts[i] = "CAST(? AS " + t.pgArray() + ")"
		}
		return "SELECT * FROM unnest(" + strings.Join(casts, ", ") + ")", r.cols
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(r.types)), ", ") + ")"
	args := make([]any, 0, r.n*len(r.types))
	for i := range r.n {
		for _, c := range r.cols {
			switch c := c.(type) {
			case []string:
				args = append(args, c[i])
			case []int64:
				args = append(args, c[i])
			case []time.Time:
				args = append(args, c[i])
			}
		}
	}
	return "VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", r.n), ", "), args
}

// keys returns a condition that names the primary keys of the rows, column
// col of the set, to a join against them (with its arguments). PostgreSQL
// gets `AND id = ANY(…)`: with it the jobs to update are found by primary
// key whatever the planner's statistics say, where the join alone may be
// driven from another index. SQLite's planner looks the join up by key by
// itself.
func (r *rowSet) keys(d pstore.Dialect, col int) (string, []any) {
	if d != pstore.Postgres {
		return "", nil
	}
	return " AND id = ANY(CAST(? AS text[]))", []any{r.cols[col]}
}
