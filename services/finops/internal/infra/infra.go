// Package infra reads infrastructure cost from a real source, a FOCUS 1.x
// CSV export or an OpenCost /allocation response, maps each line to a
// tenant by the operator's rule, and sums it per tenant and UTC day for
// finops-import. Readers stream (memory grows with the tenant-days
// charged, never with the lines read) and validate strictly: every
// refusal is an *apierr.Error with one of the reasons below and the line
// or allocation it is about.
package infra

import (
	"cmp"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// Reasons of refused input.
const (
	ReasonFormat   = "INFRA_FORMAT_INVALID"   // not a FOCUS CSV / OpenCost response
	ReasonCost     = "INFRA_COST_INVALID"     // a cost that is not a decimal in range
	ReasonPeriod   = "INFRA_PERIOD_INVALID"   // a charge period or window that is missing, reversed or too long
	ReasonCurrency = "INFRA_CURRENCY_INVALID" // a billing currency other than USD
	ReasonTenant   = "INFRA_TENANT_INVALID"   // a rule mapped a line to something that is not a tenant id
	ReasonTooLarge = "INFRA_IMPORT_TOO_LARGE" // more tenant-days than MaxEntries
)

// Bounds.
const (
	// MaxEntries bounds the tenant-days one import charges (the memory
	// it holds): 1,000 tenants over a year fits.
	MaxEntries = 500_000
	// MaxSpan bounds one line's charge period: a month and a day.
	MaxSpan = 32 * 24 * time.Hour
	// maxLineMicros bounds one line's cost: a billion dollars.
	maxLineMicros = 1_000_000_000 * domain.MicrosPerDollar
	// maxFieldLen bounds a field read (a cost, a time, a tag value).
	maxFieldLen = 4096
)

// Kind is the part of the infrastructure a cost is counted in.
type Kind int

// Kinds.
const (
	Compute Kind = iota
	Database
)

// Rule maps a line's labels (FOCUS Tags, OpenCost labels) or namespace to
// a tenant: the value of label Label when present, else the namespace
// without NamespacePrefix when it has it, else unallocated ("").
type Rule struct {
	Label           string
	NamespacePrefix string
}

// Tenant applies the rule; a mapped value that is not a tenant id is
// refused rather than guessed at.
func (r Rule) Tenant(labels map[string]string, namespace string) (string, error) {
	t := ""
	if v, ok := labels[r.Label]; r.Label != "" && ok && v != "" {
		t = v
	} else if r.NamespacePrefix != "" && strings.HasPrefix(namespace, r.NamespacePrefix) {
		t = strings.TrimPrefix(namespace, r.NamespacePrefix)
	}
	if t != "" && !identity.ValidTenant(t) {
		return "", apierr.InvalidArgument(ReasonTenant, "%q is not a valid tenant id", apierr.Clip(t))
	}
	return t, nil
}

// Sums adds costs per tenant and UTC day.
type Sums struct {
	m map[key]*[2]int64
}

type key struct {
	day    int64
	tenant string
}

// NewSums returns empty Sums.
func NewSums() *Sums { return &Sums{m: make(map[key]*[2]int64)} }

// Add adds micros of kind, charged over [start, end), to tenant, split
// over the UTC days the period covers in proportion to its time on each
// (rounded down; the last day takes the rest, so the parts sum to
// micros).
func (s *Sums) Add(tenant string, kind Kind, start, end time.Time, micros int64) error {
	if !end.After(start) || end.Sub(start) > MaxSpan {
		return apierr.InvalidArgument(ReasonPeriod, "the period %s to %s is empty, reversed or longer than %s",
			start.Format(time.RFC3339), end.Format(time.RFC3339), MaxSpan)
	}
	total := big.NewInt(int64(end.Sub(start)))
	left := micros
	for day := domain.DayOf(start); ; day++ {
		dayEnd := domain.DayStart(day + 1)
		part := left
		if end.After(dayEnd) {
			from := domain.DayStart(day)
			if start.After(from) {
				from = start
			}
			on := dayEnd.Sub(from)
			p := new(big.Int).Mul(big.NewInt(micros), big.NewInt(int64(on)))
			part = p.Div(p, total).Int64()
		}
		if err := s.add(key{day, tenant}, kind, part); err != nil {
			return err
		}
		left -= part
		if !end.After(dayEnd) {
			return nil
		}
	}
}

func (s *Sums) add(k key, kind Kind, micros int64) error {
	v, ok := s.m[k]
	if !ok {
		if len(s.m) >= MaxEntries {
			return apierr.InvalidArgument(ReasonTooLarge, "more than %d tenant-days", MaxEntries)
		}
		v = new([2]int64)
		s.m[k] = v
	}
	// Lines are bounded, so only an absurd count of them can overflow.
	n := v[kind] + micros
	if (micros > 0 && n < v[kind]) || (micros < 0 && n > v[kind]) {
		return apierr.InvalidArgument(ReasonCost, "the costs of %s on day %d overflow", k.tenant, k.day)
	}
	v[kind] = n
	return nil
}

// Days lists the days charged, sorted: the days an import covers.
func (s *Sums) Days() []int64 {
	seen := make(map[int64]bool)
	for k := range s.m {
		seen[k.day] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// Costs lists the sums by day then tenant.
func (s *Sums) Costs() []domain.InfraCost {
	out := make([]domain.InfraCost, 0, len(s.m))
	for k, v := range s.m {
		out = append(out, domain.InfraCost{Day: k.day, TenantID: k.tenant, ComputeMicros: v[Compute], DatabaseMicros: v[Database]})
	}
	slices.SortFunc(out, func(a, b domain.InfraCost) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), strings.Compare(a.TenantID, b.TenantID))
	})
	return out
}

// ParseCost reads a decimal amount of dollars (a sign, digits, a point,
// an exponent as JSON writes small floats) as micro-dollars, rounded half
// away from zero; credits are negative.
func ParseCost(s string) (int64, error) {
	bad := func(why string) error {
		return apierr.InvalidArgument(ReasonCost, "cost %q: %s", apierr.Clip(s), why)
	}
	if s == "" || len(s) > 64 {
		return 0, bad("empty or longer than 64 bytes")
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if !decimal(mant) {
		return 0, bad("not a decimal number")
	}
	if e := strings.TrimPrefix(strings.TrimPrefix(exp, "-"), "+"); hasExp && (e == "" || len(e) > 2 || !digitsOnly(e)) {
		return 0, bad("bad exponent") // also bounds the big.Rat below
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, bad("not a decimal number")
	}
	r.Mul(r, big.NewRat(domain.MicrosPerDollar, 1))
	// Round half away from zero: |r| + 1/2, truncated.
	num, den := new(big.Int).Abs(r.Num()), r.Denom()
	q := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Mul(num, big.NewInt(2)), den), new(big.Int).Mul(den, big.NewInt(2)))
	if q.Cmp(big.NewInt(maxLineMicros)) > 0 {
		return 0, bad("above a billion dollars")
	}
	v := q.Int64()
	if r.Sign() < 0 {
		v = -v
	}
	return v, nil
}

// decimal: an optional sign, digits, at most one point, at least one digit.
func decimal(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, _ := strings.Cut(s, ".")
	return whole+frac != "" && digitsOnly(whole) && digitsOnly(frac)
}

func digitsOnly(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseTime reads an RFC 3339 time (FOCUS and OpenCost both write it).
func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, apierr.InvalidArgument(ReasonPeriod, "%s %q is not an RFC 3339 time in 2000-9999", field, apierr.Clip(s))
	}
	return t.UTC(), nil
}

// at prefixes err with where it was found, keeping its reason.
func at(where string, err error) error {
	if e, ok := apierr.As(err); ok {
		return apierr.InvalidArgument(e.Reason, "%s: %s", where, e.Message)
	}
	return fmt.Errorf("%s: %w", where, err)
}
