package store

import (
	"database/sql"
	"time"
)

// All reads every row of a query with scan and closes rows; it takes a
// query's two results as they come: store.All(tx.QueryContext(…), scanX).
func All[T any](rows *sql.Rows, err error, scan func(*sql.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ReadRows hands rows to scan and closes them, returning the first error;
func ReadRows(rows *sql.Rows, err error, scan func(Rows) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := scan(rows); err != nil {
		return err
	}
	return rows.Err()
}

// Strings reads a one-column result of text values and closes rows; it
// takes a query's two results as they come: store.Strings(tx.QueryContext(…)).
func Strings(rows *sql.Rows, err error) ([]string, error) {
	return All(rows, err, func(rows *sql.Rows) (s string, err error) { return s, rows.Scan(&s) })
}

// NullTime is t as a nullable column's argument: NULL for the zero time,
// else t in UTC. Scan such a column into sql.NullTime, whose Time is the
// zero time for NULL.
func NullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}
