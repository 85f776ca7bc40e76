package store

import "database/sql"

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

// Strings reads a one-column result of text values and closes rows; it
// takes a query's two results as they come: store.Strings(tx.QueryContext(…)).
func Strings(rows *sql.Rows, err error) ([]string, error) {
	return All(rows, err, func(rows *sql.Rows) (s string, err error) { return s, rows.Scan(&s) })
}
