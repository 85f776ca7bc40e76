package store

import "database/sql"

// Strings reads a one-column result of text values and closes rows; it
// takes a query's two results as they come: store.Strings(tx.QueryContext(…)).
func Strings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
