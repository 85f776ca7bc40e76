// Command finops-reconcile compares the payments finops recorded over a
// period with Stripe's own list of charges, as `stripe charges list`
// writes it ({"object":"list","data":[{"id":"ch_…","amount":…,
// "currency":"usd","created":…,"status":"succeeded",…}],"has_more":false}):
//
//	finops-reconcile --from 2026-03-01 --to 2026-03-31 [--json] <charges list | ->
//
// It reports charges finops is missing (a lost webhook, an event still
// held for an unknown customer), payments Stripe does not list (a charge
// outside the export, or a forged event), and amounts that differ (gross
// or refunded). Only succeeded charges in USD created within the period
// count: finops records nothing else. Payments of invoices paid without a
// charge (keys in_…) are not in a charges list and are only counted.
//
// Exit status: 0 both sides agree; 1 differences were found; 2 usage, I/O
// or database error, or an export that is not a charges list.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Charge is what the reconciliation reads of a Stripe charge.
type Charge struct {
	ID             string `json:"id"`
	Amount         int64  `json:"amount"`
	AmountRefunded int64  `json:"amount_refunded"`
	Currency       string `json:"currency"`
	Created        int64  `json:"created"`
	Customer       string `json:"customer"`
	Status         string `json:"status"`
}

// Mismatch is a payment both sides have with different amounts, in cents.
type Mismatch struct {
	ID                   string `json:"id"`
	TenantID             string `json:"tenant_id"`
	StripeAmount         int64  `json:"stripe_amount"`
	FinopsGross          int64  `json:"finops_gross_cents"`
	StripeAmountRefunded int64  `json:"stripe_amount_refunded"`
	FinopsRefunded       int64  `json:"finops_refunded_cents"`
}

// Missing is a payment one side has and the other does not.
type Missing struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id,omitempty"`
	Customer string `json:"customer,omitempty"`
	Cents    int64  `json:"amount_cents"`
	At       string `json:"at"`
}

// Report is the reconciliation's result.
type Report struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Matched counts charges both sides have with the same amounts.
	Matched         int        `json:"matched"`
	MissingInFinops []Missing  `json:"missing_in_finops"`
	MissingInStripe []Missing  `json:"missing_in_stripe"`
	Mismatched      []Mismatch `json:"amount_mismatches"`
	// InvoicePayments counts finops payments of invoices without a charge.
	InvoicePayments int `json:"invoice_payments"`
	// Skipped counts charges of the export that finops does not record
	// (not succeeded, not USD) or outside the period.
	Skipped int `json:"skipped_charges"`
	// Incomplete is the export's has_more: Stripe has charges it lacks.
	Incomplete bool `json:"incomplete_export"`
}

// Agrees reports whether the two sides agree.
func (r Report) Agrees() bool {
	return len(r.MissingInFinops) == 0 && len(r.MissingInStripe) == 0 && len(r.Mismatched) == 0
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("finops-reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dbURL    = fs.String("database-url", os.Getenv("ECHOPILOT_DATABASE_URL"), "the finops database (default $ECHOPILOT_DATABASE_URL)")
		from, to = fs.String("from", "", "first UTC day, YYYY-MM-DD"), fs.String("to", "", "last UTC day, YYYY-MM-DD (inclusive)")
		asJSON   = fs.Bool("json", false, "print the report as JSON")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "finops-reconcile:", err)
		return 2
	}
	days, err := parseDays(*from, *to)
	if err != nil {
		return fail(err)
	}
	if fs.NArg() != 1 || *dbURL == "" {
		return fail(errors.New("usage: finops-reconcile --database-url URL --from DAY --to DAY <charges list | ->"))
	}
	in := stdin
	if src := fs.Arg(0); src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		in = f
	}
	charges, incomplete, err := ReadCharges(in)
	if err != nil {
		return fail(err)
	}
	db, err := pstore.Open(ctx, *dbURL)
	if err != nil {
		return fail(fmt.Errorf("database: %w", err))
	}
	st := store.New(db)
	defer st.Close()
	rep, err := Reconcile(ctx, st, days, charges)
	if err != nil {
		return fail(err)
	}
	rep.Incomplete = incomplete
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(err)
		}
	} else {
		printText(stdout, rep)
	}
	if !rep.Agrees() {
		return 1
	}
	return 0
}

func parseDays(from, to string) (domain.Days, error) {
	f, err := time.Parse(time.DateOnly, from)
	if err != nil {
		return domain.Days{}, errors.New("--from must be a day, YYYY-MM-DD")
	}
	t, err := time.Parse(time.DateOnly, to)
	if err != nil || t.Before(f) {
		return domain.Days{}, errors.New("--to must be a day, YYYY-MM-DD, not before --from")
	}
	return domain.Days{From: domain.DayOf(f), To: domain.DayOf(t)}, nil
}

// ReadCharges decodes a Stripe list of charges: every charge by id, and
// has_more.
func ReadCharges(r io.Reader) (map[string]Charge, bool, error) {
	var list struct {
		Object  string   `json:"object"`
		Data    []Charge `json:"data"`
		HasMore bool     `json:"has_more"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&list); err != nil {
		return nil, false, fmt.Errorf("charges list: not a Stripe list: %w", err)
	}
	if list.Object != "list" {
		return nil, false, errors.New(`charges list: "object" is not "list"`)
	}
	out := make(map[string]Charge, len(list.Data))
	for i, c := range list.Data {
		if !strings.HasPrefix(c.ID, "ch_") && !strings.HasPrefix(c.ID, "py_") {
			return nil, false, fmt.Errorf("charges list: data[%d]: id %q is not a charge's", i, c.ID)
		}
		if _, dup := out[c.ID]; dup {
			return nil, false, fmt.Errorf("charges list: charge %s appears twice", c.ID)
		}
		out[c.ID] = c
	}
	return out, list.HasMore, nil
}

// Payments is the store's side of the reconciliation.
type Payments interface {
	Payments(ctx context.Context, days domain.Days, fn func(domain.Payment) error) error
}

// Reconcile compares the recorded payments of days with charges. It
// streams the payments; charges are the export, held in memory.
func Reconcile(ctx context.Context, st Payments, days domain.Days, charges map[string]Charge) (Report, error) {
	rep := Report{From: domain.DayStart(days.From).Format(time.DateOnly), To: domain.DayStart(days.To).Format(time.DateOnly)}
	want := make(map[string]Charge)
	for id, c := range charges {
		day := domain.DayOf(time.Unix(c.Created, 0))
		if c.Status != "succeeded" || c.Currency != domain.Currency || day < days.From || day > days.To {
			rep.Skipped++
			continue
		}
		want[id] = c
	}
	err := st.Payments(ctx, days, func(p domain.Payment) error {
		if strings.HasPrefix(p.Key, "in_") {
			rep.InvoicePayments++
			return nil
		}
		c, ok := want[p.Key]
		if !ok {
			// The export may have it outside the period, or not as
			// counted: both are a difference to look at.
			rep.MissingInStripe = append(rep.MissingInStripe, Missing{ID: p.Key, TenantID: p.TenantID,
				Cents: p.GrossCents, At: p.PaidAt.UTC().Format(time.RFC3339)})
			return nil
		}
		delete(want, p.Key)
		if c.Amount != p.GrossCents || c.AmountRefunded != p.RefundedCents {
			rep.Mismatched = append(rep.Mismatched, Mismatch{ID: p.Key, TenantID: p.TenantID, StripeAmount: c.Amount,
				FinopsGross: p.GrossCents, StripeAmountRefunded: c.AmountRefunded, FinopsRefunded: p.RefundedCents})
			return nil
		}
		rep.Matched++
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		c := want[id]
		rep.MissingInFinops = append(rep.MissingInFinops, Missing{ID: id, Customer: c.Customer, Cents: c.Amount,
			At: time.Unix(c.Created, 0).UTC().Format(time.RFC3339)})
	}
	slices.SortFunc(rep.MissingInStripe, func(a, b Missing) int { return cmp.Compare(a.ID, b.ID) })
	return rep, nil
}

func printText(w io.Writer, r Report) {
	fmt.Fprintf(w, "period %s to %s: %d matched, %d missing in finops, %d missing in Stripe, %d amount mismatches, %d invoice payments, %d charges skipped\n",
		r.From, r.To, r.Matched, len(r.MissingInFinops), len(r.MissingInStripe), len(r.Mismatched), r.InvoicePayments, r.Skipped)
	if r.Incomplete {
		fmt.Fprintln(w, "WARNING: the export has has_more=true: Stripe has charges it does not list")
	}
	for _, m := range r.MissingInFinops {
		fmt.Fprintf(w, "MISSING IN FINOPS %s customer=%s amount=%d at=%s\n", m.ID, m.Customer, m.Cents, m.At)
	}
	for _, m := range r.MissingInStripe {
		fmt.Fprintf(w, "MISSING IN STRIPE %s tenant=%s amount=%d at=%s\n", m.ID, m.TenantID, m.Cents, m.At)
	}
	for _, m := range r.Mismatched {
		fmt.Fprintf(w, "MISMATCH %s tenant=%s amount stripe=%d finops=%d refunded stripe=%d finops=%d\n",
			m.ID, m.TenantID, m.StripeAmount, m.FinopsGross, m.StripeAmountRefunded, m.FinopsRefunded)
	}
}
