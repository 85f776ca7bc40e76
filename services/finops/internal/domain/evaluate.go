package domain

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Anomaly detection parameters.
const (
	// AnomalyWindow is the trailing days a day is compared with.
	AnomalyWindow = 14
	// AnomalyMinHistory is the fewest trailing days (since a tenant's first
	// rollup in the window) a day needs before it can be flagged, so a
	// tenant's first days never alert.
	AnomalyMinHistory = 7
	// DefaultAnomalyK is how many standard deviations from the trailing
	// mean flag a day.
	DefaultAnomalyK = 3.0
	// anomalyLookback is how many complete days before today each run
	// checks, so a run missed for a day or two (all replicas down) is
	// caught up.
	anomalyLookback = 3
)

// monthOf returns the days of now's UTC month up to today, and the number
// of days in the month.
func monthOf(now time.Time) (Days, int64, string) {
	now = now.UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	next := first.AddDate(0, 1, 0)
	return Days{From: DayOf(first), To: DayOf(now)}, DayOf(next) - DayOf(first), first.Format("2006-01")
}

// scopeOfBudget is what a budget covers: tenant "default" is the
// platform's budget, over every tenant.
func scopeOfBudget(tenant string) Scope {
	return Scope{Tenant: tenant, All: tenant == adminTenant}
}

// EvaluateBudgets records an alert for each threshold of each budget that
// this month's actual spend, or its forecast (month-to-date cost / days
// elapsed × days in the month), has reached. Spend is total cost: AI and
// infrastructure (allocated for a tenant, all of it for the platform).
// Each crossing is recorded once per budget, threshold, basis and month,
// however often and on however many replicas it runs; it returns the
// alerts it recorded.
func (s *Service) EvaluateBudgets(ctx context.Context) ([]Alert, error) {
	budgets, err := s.store.Budgets(ctx)
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", err)
	}
	now := s.cfg.Now().UTC()
	month, monthLen, label := monthOf(now)
	var out []Alert
	for _, b := range budgets {
		points, err := s.points(ctx, scopeOfBudget(b.TenantID), month)
		if err != nil {
			return out, err
		}
		var actual int64
		for _, p := range points {
			actual += p.Profit().CostMicros
		}
		forecast := actual * monthLen / month.Len()
		for _, t := range b.ThresholdsPct {
			limit := b.AmountMicros * int64(t) / 100
			for _, c := range []struct {
				basis string
				spend int64
			}{{BasisActual, actual}, {BasisForecast, forecast}} {
				if c.spend < limit {
					continue
				}
				a := Alert{
					Key:      fmt.Sprintf("budget/%s/%s/%d/%s", b.TenantID, label, t, c.basis),
					TenantID: b.TenantID, Kind: AlertBudget, Metric: c.basis, Period: label, ThresholdPct: t,
					Value: c.spend, Reference: b.AmountMicros, CreatedAt: now,
					Message: fmt.Sprintf("%s spend of %s is $%v, %d%% or more of the monthly budget of $%v",
						c.basis, label, Dollars(c.spend), t, Dollars(b.AmountMicros)),
				}
				if out, err = s.record(ctx, out, a); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

func (s *Service) record(ctx context.Context, out []Alert, a Alert) ([]Alert, error) {
	isNew, err := s.store.RecordAlert(ctx, a)
	if err != nil {
		return out, fmt.Errorf("record alert %s: %w", a.Key, err)
	}
	if isNew {
		out = append(out, a)
		if s.cfg.OnAlert != nil {
			s.cfg.OnAlert(a)
		}
	}
	return out, nil
}

// DetectAnomalies flags, for each tenant, each of the last complete days
// whose cost or margin is more than k standard deviations (Config.AnomalyK,
// DefaultAnomalyK when 0) from its trailing AnomalyWindow-day mean. A day
// needs AnomalyMinHistory trailing days since the tenant's first rollup in
// the window (margin: days with revenue), so a new tenant's first days
// never alert. Each is recorded once per tenant, day and metric; it returns
// the alerts it recorded.
func (s *Service) DetectAnomalies(ctx context.Context) ([]Alert, error) {
	k := s.cfg.AnomalyK
	if k <= 0 {
		k = DefaultAnomalyK
	}
	now := s.cfg.Now().UTC()
	today := DayOf(now)
	span := Days{From: today - anomalyLookback - AnomalyWindow, To: today - 1}
	var out []Alert
	after := ""
	for {
		tenants, err := s.store.TenantTotals(ctx, Scope{All: true}, span, s.cfg.Rate, after, 500)
		if err != nil {
			return out, fmt.Errorf("tenant totals: %w", err)
		}
		for _, t := range tenants {
			rows, err := s.store.DaySeries(ctx, Scope{Tenant: t.TenantID}, span, s.cfg.Rate)
			if err != nil {
				return out, fmt.Errorf("day series: %w", err)
			}
			for _, a := range anomalies(t.TenantID, rows, span, k, now) {
				if out, err = s.record(ctx, out, a); err != nil {
					return out, err
				}
			}
		}
		if len(tenants) < 500 {
			return out, nil
		}
		after = tenants[len(tenants)-1].TenantID
	}
}

// anomalies checks the last anomalyLookback days of span against their
// trailing windows. rows are one tenant's days, ascending; absent days
// after its first row are zeros.
func anomalies(tenant string, rows []DayTotals, span Days, k float64, now time.Time) []Alert {
	if len(rows) == 0 {
		return nil
	}
	first := rows[0].Day
	byDay := make(map[int64]DayPoint, len(rows))
	for _, r := range rows {
		byDay[r.Day] = DayPoint{Day: r.Day, Totals: r.Totals, InfraMicros: r.AllocComputeMicros + r.AllocDatabaseMicros}
	}
	var out []Alert
	for day := span.To - anomalyLookback + 1; day <= span.To; day++ {
		var costs, margins []float64
		for d := max(first, day-AnomalyWindow); d < day; d++ {
			p := byDay[d].Profit()
			costs = append(costs, float64(p.CostMicros))
			if p.RevenueMicros > 0 {
				margins = append(margins, p.MarginPct())
			}
		}
		p := byDay[day].Profit()
		date := DayStart(day).Format(time.DateOnly)
		if mean, ok := outlier(costs, float64(p.CostMicros), k); ok {
			out = append(out, Alert{Key: fmt.Sprintf("anomaly/%s/%s/cost", tenant, date), TenantID: tenant,
				Kind: AlertAnomaly, Metric: MetricCost, Period: date, Value: p.CostMicros, Reference: int64(math.Round(mean)),
				CreatedAt: now, Message: fmt.Sprintf("cost on %s is $%v against a trailing mean of $%v",
					date, Dollars(p.CostMicros), Dollars(int64(math.Round(mean))))})
		}
		if p.RevenueMicros == 0 {
			continue
		}
		if mean, ok := outlier(margins, p.MarginPct(), k); ok {
			out = append(out, Alert{Key: fmt.Sprintf("anomaly/%s/%s/margin", tenant, date), TenantID: tenant,
				Kind: AlertAnomaly, Metric: MetricMargin, Period: date, Value: int64(math.Round(p.MarginPct() * 100)),
				Reference: int64(math.Round(mean * 100)), CreatedAt: now,
				Message: fmt.Sprintf("margin on %s is %.2f%% against a trailing mean of %.2f%%", date, p.MarginPct(), mean)})
		}
	}
	return out
}

// outlier reports whether v is more than k standard deviations (population)
// from the mean of history, which needs AnomalyMinHistory values. A flat
// history (deviation 0) uses 1% of the mean, at least 1 unit, so a
// constant series does not flag every tiny change.
func outlier(history []float64, v, k float64) (float64, bool) {
	if len(history) < AnomalyMinHistory {
		return 0, false
	}
	var sum float64
	for _, h := range history {
		sum += h
	}
	mean := sum / float64(len(history))
	var sq float64
	for _, h := range history {
		sq += (h - mean) * (h - mean)
	}
	sd := math.Sqrt(sq / float64(len(history)))
	sd = max(sd, math.Abs(mean)/100, 1)
	return mean, math.Abs(v-mean) > k*sd
}
