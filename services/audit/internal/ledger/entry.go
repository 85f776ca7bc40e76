package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Entry is one audit log entry of a tenant. Seq starts at 1; the Merkle leaf
// index is Seq-1.
type Entry struct {
	TenantID  string
	Seq       uint64
	TS        time.Time // UTC, microsecond precision (Link truncates)
	EventType string
	User      string
	Action    string
	Resource  string
	Details   string // canonical JSON object text (see CanonicalDetails); "{}" when none
	Severity  string // low | medium | high | critical
	PrevHash  string // Genesis for Seq 1, else the previous entry's Hash
	Hash      string // lower-case hex SHA-256 of Canonical(e)
}

// Genesis is the PrevHash of the first entry of every log.
const Genesis = "genesis"

// Severities.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// ValidSeverity reports whether s is one of the four severities.
func ValidSeverity(s string) bool {
	switch s {
	case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		return true
	}
	return false
}

// TSLayout is the canonical timestamp text (in the encoding and exports).
const TSLayout = "2006-01-02T15:04:05.000000Z"

const canonicalHeader = "echopilot-audit-entry/v1\n"

// NormalizeTS is what an entry's TS is made into before hashing: UTC,
// truncated to the microsecond (Postgres timestamptz precision), without a
// monotonic reading.
func NormalizeTS(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// Canonical is the byte encoding hashed for an entry (see the package
// comment for the specification).
func Canonical(e Entry) []byte {
	return appendCanonical(make([]byte, 0, 256), e)
}

// appendCanonical appends Canonical(e) to buf; the chain checker reuses one
// buffer so verifying an entry allocates nothing.
func appendCanonical(buf []byte, e Entry) []byte {
	var scratch [32]byte
	buf = append(buf, canonicalHeader...)
	buf = appendField(buf, e.TenantID)
	buf = appendFieldBytes(buf, strconv.AppendUint(scratch[:0], e.Seq, 10))
	buf = appendFieldBytes(buf, appendTS(scratch[:0], NormalizeTS(e.TS)))
	buf = appendField(buf, e.EventType)
	buf = appendField(buf, e.User)
	buf = appendField(buf, e.Action)
	buf = appendField(buf, e.Resource)
	buf = appendField(buf, e.Severity)
	buf = appendField(buf, e.Details)
	buf = appendField(buf, e.PrevHash)
	return buf
}

// appendTS appends t (normalised) as TSLayout: by hand for four-digit
// years, which every entry has (Link takes 1970 to 9999), as AppendFormat
// took nearly a third of a full verification's chain check; by
// AppendFormat for any other year.
func appendTS(buf []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	if y < 1000 || y > 9999 {
		return t.AppendFormat(buf, TSLayout)
	}
	h, mi, s := t.Clock()
	buf = appendDigits(buf, y, 4)
	buf = append(buf, '-')
	buf = appendDigits(buf, int(mo), 2)
	buf = append(buf, '-')
	buf = appendDigits(buf, d, 2)
	buf = append(buf, 'T')
	buf = appendDigits(buf, h, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, mi, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, s, 2)
	buf = append(buf, '.')
	buf = appendDigits(buf, t.Nanosecond()/1000, 6)
	return append(buf, 'Z')
}

// appendDigits appends v (0 <= v < 10^width) in width decimal digits.
func appendDigits(buf []byte, v, width int) []byte {
	buf = append(buf, "000000"[:width]...)
	for i := len(buf) - 1; i >= len(buf)-width; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return buf
}

func appendField(buf []byte, v string) []byte {
	buf = strconv.AppendInt(buf, int64(len(v)), 10)
	buf = append(buf, ':')
	buf = append(buf, v...)
	return append(buf, '\n')
}

func appendFieldBytes(buf, v []byte) []byte {
	buf = strconv.AppendInt(buf, int64(len(v)), 10)
	buf = append(buf, ':')
	buf = append(buf, v...)
	return append(buf, '\n')
}

// ComputeHash is the lower-case hex SHA-256 of Canonical(e).
func ComputeHash(e Entry) string {
	var buf [512]byte
	sum := sha256.Sum256(appendCanonical(buf[:0], e))
	return hex.EncodeToString(sum[:])
}

// DecodeHash turns an entry hash (64 lower-case hex digits) into its 32 raw
// bytes: the Merkle leaf data of the entry.
func DecodeHash(h string) ([]byte, error) {
	if len(h) != 2*sha256.Size {
		return nil, fmt.Errorf("hash %q: want %d hex digits", h, 2*sha256.Size)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, fmt.Errorf("hash %q: not lower-case hex", h)
		}
	}
	return hex.DecodeString(h)
}

// Draft is an entry checked and normalised by Prepare, waiting for its
// place in a log. Preparing is the costly part of linking (details are
// parsed and re-encoded), so appenders do it before they lock the log.
type Draft struct{ e Entry }

// Prepare checks that e survives an export round trip (valid UTF-8
// everywhere, a known severity, a usable tenant id) and normalises its
// Details.
func Prepare(e Entry) (Draft, error) {
	if err := checkTenantID(e.TenantID); err != nil {
		return Draft{}, err
	}
	for _, f := range [...]struct{ name, v string }{
		{"event_type", e.EventType}, {"user", e.User}, {"action", e.Action}, {"resource", e.Resource},
	} {
		// encoding/json would replace invalid UTF-8 in an export, so the
		// exported entry would no longer match its hash.
		if !utf8.ValidString(f.v) {
			return Draft{}, fmt.Errorf("%s is not valid UTF-8", f.name)
		}
	}
	if !ValidSeverity(e.Severity) {
		return Draft{}, fmt.Errorf("severity %q: want low, medium, high or critical", e.Severity)
	}
	details, err := CanonicalDetails([]byte(e.Details))
	if err != nil {
		return Draft{}, err
	}
	e.Details = details
	return Draft{e: e}, nil
}

// Entry is the prepared entry, not yet linked.
func (d Draft) Entry() Entry { return d.e }

// Link completes e as the entry after prev (nil for the first entry of a
// log): it prepares e (see Prepare), normalises TS, sets PrevHash and Hash,
// and checks that the entry can follow prev (Seq = prev.Seq+1, same
// tenant, TS not before prev.TS: callers clamp TS first).
func Link(prev *Entry, e Entry) (Entry, error) {
	d, err := Prepare(e)
	if err != nil {
		return Entry{}, err
	}
	return d.Link(prev, e.Seq, e.TS)
}

// Link places the draft at seq and ts after prev, as the function Link.
func (d Draft) Link(prev *Entry, seq uint64, ts time.Time) (Entry, error) {
	e := d.e
	if e.TenantID == "" {
		return Entry{}, errors.New("draft was not prepared")
	}
	e.Seq = seq
	e.TS = NormalizeTS(ts)
	if y := e.TS.Year(); y < 1970 || y > 9999 {
		// Also rejects the zero time, which is always a caller bug.
		return Entry{}, fmt.Errorf("ts %s out of range", e.TS.Format(time.RFC3339))
	}
	if prev == nil {
		if e.Seq != 1 {
			return Entry{}, fmt.Errorf("first entry has seq %d, want 1", e.Seq)
		}
		e.PrevHash = Genesis
	} else {
		switch {
		case prev.Seq == ^uint64(0) || e.Seq != prev.Seq+1:
			return Entry{}, fmt.Errorf("seq %d does not follow %d", e.Seq, prev.Seq)
		case e.TenantID != prev.TenantID:
			return Entry{}, errors.New("tenant differs from the previous entry's")
		case e.TS.Before(NormalizeTS(prev.TS)):
			return Entry{}, fmt.Errorf("ts %s before the previous entry's %s",
				e.TS.Format(TSLayout), NormalizeTS(prev.TS).Format(TSLayout))
		case prev.Hash == "":
			return Entry{}, errors.New("previous entry has no hash")
		}
		e.PrevHash = prev.Hash
	}
	e.Hash = ComputeHash(e)
	return e, nil
}

// checkTenantID: the tenant ID ends up on the origin line of checkpoints,
// so it must be non-empty text of one line.
func checkTenantID(id string) error {
	if id == "" {
		return errors.New("empty tenant id")
	}
	if !utf8.ValidString(id) {
		return errors.New("tenant id is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("tenant id %q contains a space or control character", id)
		}
	}
	return nil
}
