package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// entryRowColumns is how many columns q.entries returns: seq, ts, then the
// eight text columns.
const entryRowColumns = 10

// y2kMicros is PostgreSQL's timestamp epoch (2000-01-01 UTC) in Unix
// microseconds.
const y2kMicros = 946_684_800_000_000

// scanPgx is Scan's statement on the snapshot's pipelined transaction,
// decoding pgx's raw binary values: no conversion of each value through
// an interface, and one string per entry that its eight text fields
// share, where a scan allocates one per column. A full scrub reads a
// million entries this way.
func (v *snapshot) scanPgx(after uint64, limit int, fn func(ledger.Entry)) error {
	v.pipe.Queue(v.s.q.entries, v.tenant, int64(after), limit).Query(func(rows pgx.Rows) error {
		fds := rows.FieldDescriptions()
		raw := len(fds) == entryRowColumns && fds[0].Format == pgx.BinaryFormatCode && fds[1].Format == pgx.BinaryFormatCode
		var b strings.Builder
		for rows.Next() {
			if !raw {
				// Text results (the simple protocol's): its own scan, and
				// its own entry (a scan's arguments escape to the heap).
				t := ledger.Entry{TenantID: v.tenant}
				var seq int64
				if err := rows.Scan(&seq, &t.TS, &t.EventType, &t.User, &t.Action, &t.Resource, &t.Details, &t.Severity,
					&t.PrevHash, &t.Hash); err != nil {
					return err
				}
				t.Seq, t.TS = uint64(seq), t.TS.UTC()
				fn(t)
				continue
			}
			e := ledger.Entry{TenantID: v.tenant}
			if err := decodeEntry(rows.RawValues(), &b, &e); err != nil {
				return err
			}
			fn(e)
		}
		return nil
	})
	return v.pipe.Flush()
}

// decodeEntry fills e from one row of q.entries in binary format, its text
// fields slices of one string built in b.
func decodeEntry(vals [][]byte, b *strings.Builder, e *ledger.Entry) error {
	if len(vals) != entryRowColumns {
		return fmt.Errorf("entry row of %d columns", len(vals))
	}
	if len(vals[0]) != 8 || len(vals[1]) != 8 {
		return errors.New("entry row: seq or ts is not 8 bytes")
	}
	seq := int64(binary.BigEndian.Uint64(vals[0]))
	ts := int64(binary.BigEndian.Uint64(vals[1]))
	if seq <= 0 || ts == math.MaxInt64 || ts == math.MinInt64 {
		return fmt.Errorf("entry row: seq %d or an infinite ts", seq)
	}
	e.Seq, e.TS = uint64(seq), time.UnixMicro(ts+y2kMicros).UTC()
	n := 0
	for _, t := range vals[2:] {
		if t == nil {
			return fmt.Errorf("entry %d: a NULL text column", seq)
		}
		n += len(t)
	}
	b.Reset()
	b.Grow(n)
	for _, t := range vals[2:] {
		b.Write(t)
	}
	s := b.String()
	fields := [...]*string{&e.EventType, &e.User, &e.Action, &e.Resource, &e.Details, &e.Severity, &e.PrevHash, &e.Hash}
	off := 0
	for i, f := range fields {
		end := off + len(vals[2+i])
		*f = s[off:end]
		off = end
	}
	return nil
}
