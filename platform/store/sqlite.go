package store

import (
	"net/url"
)

// sqliteDSN builds the modernc.org/sqlite DSN for a file path and the query
// of a sqlite:// URL. Parameters in query win over these defaults:
//   - WAL lets readers run while one writer commits;
//   - busy_timeout makes a writer wait for the lock instead of failing;
//   - _txlock=immediate takes the write lock at BEGIN of a read-write
//     transaction, so two writers queue up rather than both reading and then
//     failing to upgrade with SQLITE_BUSY (read-only transactions still start
//     DEFERRED and run concurrently);
//   - synchronous=NORMAL is durable across application crashes in WAL mode
//     and avoids an fsync per commit;
//   - time.Time is stored as integer unix microseconds, which sort and compare
//     numerically, and read back as UTC time.Time from TIMESTAMP columns.
func sqliteDSN(path, query string) (string, error) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", err
	}
	defaults := [...][2]string{
		{"_journal_mode", "WAL"},
		{"_busy_timeout", sqliteBusyTimeout},
		{"_foreign_keys", "1"},
		{"_synchronous", "NORMAL"},
		{"_txlock", "immediate"},
		{"_time_integer_format", "unix_micro"},
		{"_inttotime", "1"},
	}
	for _, kv := range defaults {
		if !q.Has(kv[0]) {
			q.Set(kv[0], kv[1])
		}
	}
	return path + "?" + q.Encode(), nil
}
