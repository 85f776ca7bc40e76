// Package pricing turns usage into money: the effective-dated price table of
// AI models and the infrastructure rate card.
//
// Amounts are written as decimal dollar strings ("0.15", never 0.15) so a
// price is exact: JSON numbers would go through float64. They are read by
// platform/money.Parse at micro-dollar scale: digits, optionally "." and 1
// to 6 digits, at most MaxMicros; no sign, exponent, spaces or separators.
//
// # Price table file
//
// A JSON object with one key, "prices", a list of entries:
//
//	{"prices": [
//	  {"model": "gpt-4o-mini", "effective_from": "2024-07-18", "input_per_mtok": "0.15", "output_per_mtok": "0.60"},
//	  {"model": "gpt-4o", "effective_from": "2024-05-13", "input_per_mtok": "5.00", "output_per_mtok": "15.00"},
//	  {"model": "gpt-4o", "effective_from": "2024-10-02", "input_per_mtok": "2.50", "output_per_mtok": "10.00"}
//	]}
//
// input_per_mtok and output_per_mtok are US dollars per million tokens.
// effective_from is a date (YYYY-MM-DD, midnight UTC) or an RFC 3339
// timestamp; an entry applies from then until the next entry of the same
// model, so a price change is a new entry, and history stays correct for
// records completed before it. Entries may come in any order.
//
// Parse rejects, naming the entry index and field: unknown fields, an empty
// model or one with leading or trailing white space, a missing or malformed
// date, a missing or malformed amount (negative amounts are malformed), and
// two entries of the same model and effective instant. An empty list is
// valid: every record with tokens is then unpriced.
//
// # Model names
//
// Names match exactly (case-sensitive, not trimmed), as providers report
// them. One fallback: OpenAI-compatible servers report dated snapshots such
// as "gpt-4o-mini-2024-07-18" for "gpt-4o-mini", so a name the table does
// not have at all is retried without a trailing "-YYYY-MM-DD". A snapshot
// priced differently from its base name gets its own entry, which then wins.
package pricing

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/money"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// perMTok is the token count a price is quoted for.
const perMTok = 1_000_000

// MaxMicros is the largest amount a price or rate takes: $1,000,000,000. It
// keeps every parsed amount far from int64 overflow when summed.
const MaxMicros = 1_000_000_000 * domain.MicrosPerDollar

// parseDollars reads an exact decimal dollar amount ("0.50", "0.000150") as
// micro-dollars in [0, MaxMicros]. Its errors are platform/money's, which
// name the amount and what is wrong with it; callers prefix the field.
func parseDollars(s string) (int64, error) { return money.Parse(s, money.Micros, MaxMicros) }

// Price is the price of one model from EffectiveFrom on, until the next entry
// of the same model.
type Price struct {
	// Model is the name in the table; for a dated variant found through the
	// fallback it is the base name.
	Model         string
	EffectiveFrom time.Time // UTC
	// Micro-dollars per million tokens.
	InputMicrosPerMTok  int64
	OutputMicrosPerMTok int64
}

// Cost is the cost in micro-dollars of in input and out output tokens:
// (in×input + out×output) / 1,000,000, rounded half up.
//
// The sum is computed in 128 bits (math/bits), so no intermediate overflows
// for any int64 token counts and prices. A result beyond int64 (over $9.2
// trillion, e.g. 1e15 tokens at 1e12 µ$/Mtok) saturates at math.MaxInt64
// rather than wrapping. Negative token counts and prices count as 0:
// callers validate tokens, and a cost must never go negative.
func (p Price) Cost(in, out int64) int64 {
	hi1, lo1 := bits.Mul64(nonNeg(in), nonNeg(p.InputMicrosPerMTok))
	hi2, lo2 := bits.Mul64(nonNeg(out), nonNeg(p.OutputMicrosPerMTok))
	// Each product is below 2^126, so neither addition carries out of 128 bits.
	lo, c := bits.Add64(lo1, lo2, 0)
	hi := hi1 + hi2 + c
	lo, c = bits.Add64(lo, perMTok/2, 0) // half up
	hi += c
	if hi >= perMTok { // quotient would not fit 64 bits (and bits.Div64 would panic)
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, perMTok)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

func nonNeg(v int64) uint64 { return uint64(max(v, 0)) }

// Table is an immutable effective-dated price table, safe for concurrent use.
// A nil *Table has no prices.
type Table struct {
	byModel map[string][]Price // each sorted by EffectiveFrom, ascending
	n       int
}

// Len is the number of entries.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Lookup returns the price of model in effect at at: the entry with the
// latest EffectiveFrom <= at. ok is false when the model is unknown or at is
// before its first entry. The dated-variant fallback (see the package
// comment) applies only when the exact name has no entry at all: a model the
// table names is never priced from another name's entries.
func (t *Table) Lookup(model string, at time.Time) (Price, bool) {
	if t == nil {
		return Price{}, false
	}
	prices, ok := t.byModel[model]
	if !ok {
		base, dated := stripDate(model)
		if !dated {
			return Price{}, false
		}
		prices = t.byModel[base]
	}
	// Index of the first entry after at; the one before it is in effect.
	i, _ := slices.BinarySearchFunc(prices, at, func(p Price, at time.Time) int {
		if p.EffectiveFrom.After(at) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return Price{}, false
	}
	return prices[i-1], true
}

// stripDate removes a trailing "-YYYY-MM-DD" (digits only; the date itself
// is not checked, the name is only matched).
func stripDate(model string) (string, bool) {
	const suffix = len("-2006-01-02")
	if len(model) <= suffix {
		return "", false
	}
	base, s := model[:len(model)-suffix], model[len(model)-suffix:]
	for i := range len(s) {
		want := i == 0 || i == 5 || i == 8 // the dashes
		if want != (s[i] == '-') || !want && (s[i] < '0' || s[i] > '9') {
			return "", false
		}
	}
	return base, true
}

// Price prices r in place from its Model, tokens and CompletedAt. A record
// without tokens is priced at 0 whatever its model: nothing to price (a
// report job without AI use). A record with tokens whose model is empty or
// has no price at CompletedAt is left unpriced (Priced false, CostMicros 0)
// so it is reported as such, never counted as free.
func (t *Table) Price(r *domain.UsageRecord) {
	r.Priced, r.CostMicros = false, 0
	if r.InputTokens <= 0 && r.OutputTokens <= 0 {
		r.Priced = true
		return
	}
	if p, ok := t.Lookup(r.Model, r.CompletedAt); ok {
		r.Priced, r.CostMicros = true, p.Cost(r.InputTokens, r.OutputTokens)
	}
}

// entryJSON is one entry of the file; amounts stay strings for exactness.
type entryJSON struct {
	Model         string `json:"model"`
	EffectiveFrom string `json:"effective_from"`
	InputPerMTok  string `json:"input_per_mtok"`
	OutputPerMTok string `json:"output_per_mtok"`
}

// Parse reads a price table in the JSON format of the package comment.
func Parse(r io.Reader) (*Table, error) {
	var file struct {
		// Raw so each entry is decoded on its own and its errors name its index.
		Prices *[]json.RawMessage `json:"prices"`
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return nil, errors.New("price table: data after the top-level object")
	}
	if file.Prices == nil {
		// {} is more likely a wrong file than a deliberately empty table.
		return nil, errors.New(`price table: no "prices" list (write "prices": [] for an empty table)`)
	}

	type key struct {
		model string
		sec   int64
		nsec  int
	}
	seen := make(map[key]int)
	t := &Table{byModel: make(map[string][]Price)}
	for i, raw := range *file.Prices {
		p, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("price table: prices[%d]%w", i, err)
		}
		k := key{p.Model, p.EffectiveFrom.Unix(), p.EffectiveFrom.Nanosecond()}
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("price table: prices[%d]: model %q effective %s is already priced by prices[%d]",
				i, p.Model, p.EffectiveFrom.Format(time.RFC3339Nano), j)
		}
		seen[k] = i
		t.byModel[p.Model] = append(t.byModel[p.Model], p)
		t.n++
	}
	for _, prices := range t.byModel {
		slices.SortFunc(prices, func(a, b Price) int { return a.EffectiveFrom.Compare(b.EffectiveFrom) })
	}
	return t, nil
}

// parseEntry decodes and validates one entry. Its errors start with ".field:"
// or ":" so the caller can prefix the index.
func parseEntry(raw json.RawMessage) (Price, error) {
	var e entryJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			// The common mistake: a JSON number where a decimal string is due.
			return Price{}, fmt.Errorf(".%s: want a string, got a JSON %s", te.Field, te.Value)
		}
		return Price{}, fmt.Errorf(": %w", err)
	}
	switch {
	case e.Model == "":
		return Price{}, errors.New(".model: empty")
	case strings.TrimSpace(e.Model) != e.Model:
		return Price{}, fmt.Errorf(".model: %q has leading or trailing white space (names match exactly)", e.Model)
	}
	at, err := parseEffective(e.EffectiveFrom)
	if err != nil {
		return Price{}, fmt.Errorf(".effective_from: %w", err)
	}
	in, err := parseDollars(e.InputPerMTok)
	if err != nil {
		return Price{}, fmt.Errorf(".input_per_mtok: %w", err)
	}
	out, err := parseDollars(e.OutputPerMTok)
	if err != nil {
		return Price{}, fmt.Errorf(".output_per_mtok: %w", err)
	}
	return Price{Model: e.Model, EffectiveFrom: at, InputMicrosPerMTok: in, OutputMicrosPerMTok: out}, nil
}

// parseEffective reads a date (midnight UTC) or an RFC 3339 timestamp.
func parseEffective(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil // no zone in a date: Parse gives UTC
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (YYYY-MM-DD) nor an RFC 3339 timestamp", s)
	}
	return t.UTC(), nil
}

// Load reads a price table from the JSON file at path.
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // already names the path
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

//go:embed default_prices.json
var defaultJSON []byte

// defaultTable parses on first use rather than at init, so importing the
// package can never panic; TestDefault proves the embedded file parses.
var defaultTable = sync.OnceValue(func() *Table {
	t, err := Parse(bytes.NewReader(defaultJSON))
	if err != nil {
		panic("pricing: embedded default_prices.json: " + err.Error())
	}
	return t
})

// Default returns the embedded default table: OpenAI list prices of a few
// common models (standard tier; cached input is priced as plain input since
// records do not tell it apart) and "echopilot-test" for the end-to-end
// tests. It is a convenience for development: operators should supply their
// own file with the models and prices they actually pay.
func Default() *Table { return defaultTable() }
