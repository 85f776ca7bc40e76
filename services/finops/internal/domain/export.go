package domain

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/echopilot/echopilot/platform/money"
)

// ExportHeader is the CSV header of Export. Column names follow the FinOps
// FOCUS specification where one applies; x_ columns are our own, as FOCUS
// asks for custom columns.
var ExportHeader = []string{
	"ChargePeriodStart", "ChargePeriodEnd", "BillingCurrency", "SubAccountId", "SubAccountName",
	"ServiceName", "ServiceCategory", "ChargeCategory", "BilledCost", "EffectiveCost",
	"ConsumedQuantity", "ConsumedUnit", "x_JobCount", "x_UnpricedJobCount", "x_AllocationRule",
}

// Export names of the services costs are billed under.
const (
	ServiceAI       = "AI Inference"
	ServiceCompute  = "Compute"
	ServiceDatabase = "Database"
	platformAccount = "platform (unallocated)"
)

// Export writes the cost of the last days days as CSV, one row per tenant,
// day and service; in a view of every tenant also the unallocated platform
// infrastructure of each day (SubAccountId empty). It streams from the
// store.
func (s *Service) Export(ctx context.Context, c Caller, days int32, w io.Writer) error {
	n, err := periodDays(days)
	if err != nil {
		return err
	}
	sc, d := c.scope(), LastDays(s.cfg.Now(), n)
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportHeader); err != nil {
		return err
	}
	rate := s.cfg.Rate
	// Also for one tenant: its rows say which days were imported.
	inf, err := s.infra(ctx, d)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var (
		day              = d.From // next day whose platform rows are due
		allocC, allocD   int64    // allocations summed over the current day
		writePlatformFor = func(upTo int64) error {
			// Days before upTo are complete: their unallocated rest is due.
			for ; day < upTo; day++ {
				c, db := inf.on(day, rate)
				if err := writePlatform(cw, day, c-allocC, db-allocD); err != nil {
					return err
				}
				allocC, allocD = 0, 0
			}
			return nil
		}
	)
	err = s.store.DayTotals(ctx, sc, d, rate, func(t DayTotals) error {
		if sc.All {
			if err := writePlatformFor(t.Day); err != nil {
				return err
			}
			allocC += t.AllocComputeMicros
			allocD += t.AllocDatabaseMicros
		}
		rule := AllocationRule
		if _, ok := inf.imported[t.Day]; ok {
			rule = ImportedRule
		}
		return writeTenantDay(cw, t, rule)
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if sc.All {
		if err := writePlatformFor(d.To + 1); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ImportedRule is x_AllocationRule of a tenant's infrastructure on a day
// finops-import covered: its own imported cost, not a share.
const ImportedRule = "imported"

func writeTenantDay(cw *csv.Writer, t DayTotals, rule string) error {
	start, end := dayBounds(t.Day)
	tokens := t.InputTokens + t.OutputTokens
	row := func(service, category string, cost int64, qty, unit, rule string) []string {
		c := formatDollars(cost)
		return []string{start, end, "USD", t.TenantID, t.TenantID, service, category, "Usage", c, c, qty, unit,
			strconv.FormatInt(t.JobCount, 10), strconv.FormatInt(t.UnpricedJobs, 10), rule}
	}
	for _, r := range [][]string{
		row(ServiceAI, "AI and Machine Learning", t.AICostMicros, strconv.FormatInt(tokens, 10), "Tokens", ""),
		row(ServiceCompute, "Compute", t.AllocComputeMicros, "", "", rule),
		row(ServiceDatabase, "Databases", t.AllocDatabaseMicros, "", "", rule),
	} {
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	return nil
}

func writePlatform(cw *csv.Writer, day, compute, database int64) error {
	start, end := dayBounds(day)
	for _, r := range [][]string{
		{start, end, "USD", "", platformAccount, ServiceCompute, "Compute", "Usage", formatDollars(compute), formatDollars(compute), "", "", "", "", "unallocated"},
		{start, end, "USD", "", platformAccount, ServiceDatabase, "Databases", "Usage", formatDollars(database), formatDollars(database), "", "", "", "", "unallocated"},
	} {
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	return nil
}

func dayBounds(day int64) (string, string) {
	return DayStart(day).Format(time.RFC3339), DayStart(day + 1).Format(time.RFC3339)
}

// formatDollars writes micro-dollars as the export's exact decimal: at
// least two fraction digits, 500000 → "0.50", 1 → "0.000001".
func formatDollars(m int64) string { return money.Format(m, money.Micros, 2) }
