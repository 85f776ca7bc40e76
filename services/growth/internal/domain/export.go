package domain

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/echopilot/echopilot/services/growth/internal/money"
)

// ExportHeader is the CSV header of the payout export, as in the seed.
var ExportHeader = []string{"referral_code", "referrer_id", "campaign", "signups", "conversions", "revenue_usd", "payout_usd"}

// ExportFileName is the file name the export is offered under.
const ExportFileName = "payouts.csv"

// exportPage is how many rows one store read brings: the export holds one
// page at a time, whatever the number of rows.
const exportPage = 1000

// PayoutExport is a validated export, ready to be written.
type PayoutExport struct {
	svc      *Service
	tenant   string
	days     Days
	minCents int64
	// commissions is nil for the export of every conversion (state all).
	commissions *CommissionPayoutQuery
}

// PayoutQuery asks for the payouts of the last Days days of at least
// MinPayout dollars: of the commissions in State ("": approved, what is
// owed now; all: every conversion, the referrals' activity) or of the
// payout batch BatchID.
type PayoutQuery struct {
	Days      int32
	MinPayout float64
	State     string
	BatchID   string
}

// allDays is every day a conversion can have.
var allDays = Days{From: 0, To: 1<<31 - 1}

// PayoutExport checks an export request. Checking before writing lets the
// caller refuse a bad request before it commits to a CSV response.
func (s *Service) PayoutExport(c Caller, q PayoutQuery) (*PayoutExport, error) {
	n, err := periodDays(q.Days)
	if err != nil {
		return nil, err
	}
	minCents, err := minPayoutCents(q.MinPayout)
	if err != nil {
		return nil, err
	}
	state, err := commissionState(q.State, StateApproved)
	if err != nil {
		return nil, err
	}
	if q.BatchID != "" {
		if err := checkText(q.BatchID, ReasonBatchIDInvalid, "batch_id", true); err != nil {
			return nil, err
		}
	}
	e := &PayoutExport{svc: s, tenant: c.Tenant, days: LastDays(s.cfg.Now(), n), minCents: minCents}
	if state == StateAll && q.BatchID == "" {
		return e, nil
	}
	// A commission export covers every day unless a period is asked for:
	// what is owed does not age out of a week.
	if q.Days == 0 {
		e.days = allDays
	}
	e.commissions = &CommissionPayoutQuery{Days: e.days, BatchID: q.BatchID, MinCents: minCents,
		Filter: CommissionFilter{State: state, Clock: s.clock()}}
	if state == StateAll {
		e.commissions.Filter.State = ""
	}
	return e, nil
}

// payouts reads a page of the export's rows.
func (e *PayoutExport) payouts(ctx context.Context, after string) ([]PayoutRow, error) {
	if e.commissions != nil {
		return e.svc.store.CommissionPayouts(ctx, e.tenant, *e.commissions, after, exportPage)
	}
	return e.svc.store.Payouts(ctx, e.tenant, e.days, e.minCents, after, exportPage)
}

// WriteCSV streams the export to w, a page of rows per store read, each
// read in a short transaction of its own (keyset pagination by code), so a
// slow reader holds no transaction open.
func (e *PayoutExport) WriteCSV(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportHeader); err != nil {
		return err
	}
	after := ""
	for {
		rows, err := e.payouts(ctx, after)
		if err != nil {
			return fmt.Errorf("payouts: %w", err)
		}
		for _, r := range rows {
			if err := cw.Write([]string{
				r.Code, SafeCell(r.ReferrerID), SafeCell(r.Campaign),
				strconv.FormatInt(r.Signups, 10), strconv.FormatInt(r.Conversions, 10),
				money.Format(r.RevenueCents), money.Format(r.PayoutCents),
			}); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if len(rows) < exportPage {
			return nil
		}
		after = rows[len(rows)-1].Code
	}
}

// SafeCell neutralises a text cell that a spreadsheet would run as a
// formula (OWASP CSV injection): one starting with =, +, -, @, tab or
// carriage return gets a leading single quote, which spreadsheets show as
// text.
func SafeCell(s string) string {
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}
