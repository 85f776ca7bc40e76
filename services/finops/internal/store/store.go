// Package store implements domain.Store on SQLite and PostgreSQL with one set
// of queries. Every query on tenant data names its tenant in the WHERE clause
// (or, for an admin's view, reads every tenant on purpose); on PostgreSQL,
// row-level security checks the same again.
//
// Reports read daily sums, which the writes keep in the transaction that
// changes the raw rows, whatever the raw volume: per tenant and day
// (daily_rollups), and of every tenant per day (daily_totals), which is what
// a summary of every tenant and the allocation's denominator read, so they
// need not sum a row per tenant and day. The two databases differ
// only in small fragments: usage batches go as arrays in one statement on
// PostgreSQL and as prepared single-row inserts on SQLite (in-process, where
// a round trip costs nothing), and PostgreSQL locks rows read before an
// update with FOR UPDATE where SQLite's single writer already serializes.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the finops schema, for (*pstore.DB).Migrate.
var Migrations = pstore.EmbeddedMigrations(migrationFiles, "finops_schema_version")

// Store is the SQL domain.Store.
type Store struct {
	db    *pstore.DB
	stmts *pstore.Stmts
	q     queries
}

var _ domain.Store = (*Store)(nil)

// queries are the constant statements, rebound for the dialect once. The
// report queries come in two variants (see scoped).
type queries struct {
	insertUsage, insertUsageBatch, addRollup, addTotal      string
	dropEmpty                                               string
	insertEvent, eventTenant, holdEvent, setEventTenant     string
	claimCustomer, customerTenant, mapCustomer, releaseHeld string
	getPayment, insertPayment, updatePayment                string
	totals, tenantTotals, dayTotals, unpriced               scoped
	daySeries                                               scoped
	rawUsage, rawPayments                                   scoped
	unpricedUsage, priceUsage                               string
	heldEvents, customerHeld                                string
}

// scoped is a report query in its two variants: all reads every tenant's
// rows, tenant one tenant's, named by a further argument (see reportTx).
type scoped struct {
	all, tenant string
}

// of is the variant for scope.
func (q scoped) of(scope domain.Scope) string {
	if scope.All {
		return q.all
	}
	return q.tenant
}

// scopedBy builds both variants of a query: query(cond) with cond "" for
// every tenant and tenantCond for one.
func scopedBy(query func(cond string) string, tenantCond string) scoped {
	return scoped{all: query(""), tenant: query(tenantCond)}
}

// rollupColumns are the sums of daily_rollups, in the order of the fields of
// domain.Totals (see totalsDest).
var rollupColumns = []string{
	"revenue_cents", "refunded_cents", "payment_count", "ai_cost_micros", "job_count",
	"input_tokens", "output_tokens", "unpriced_jobs", "unpriced_input_tokens", "unpriced_output_tokens",
}

// New returns a Store on db, which must be migrated with Migrations. The
// Store owns db: Close closes it.
func New(db *pstore.DB) *Store {
	s := &Store{db: db, stmts: pstore.NewStmts(db)}
	forUpdate := ""
	if db.Dialect == pstore.Postgres {
		forUpdate = " FOR UPDATE"
	}
	r := db.Rebind
	cols := strings.Join(rollupColumns, ", ")
	var rollupSets, totalSets, zero []string
	for _, c := range rollupColumns {
		rollupSets = append(rollupSets, c+" = daily_rollups."+c+" + excluded."+c)
		totalSets = append(totalSets, c+" = daily_totals."+c+" + excluded."+c)
		zero = append(zero, " AND "+c+" = 0")
	}
	s.q = queries{
		insertUsage: r(`INSERT INTO usage_records (tenant_id, job_id, job_type, model, input_tokens, output_tokens,
				duration_ms, completed_at, day, priced, cost_micros)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, job_id) DO NOTHING`),
		// One statement for a whole batch, whatever its size: planned and
		// prepared once. RETURNING names the rows that were new.
		insertUsageBatch: r(`INSERT INTO usage_records (tenant_id, job_id, job_type, model, input_tokens, output_tokens,
				duration_ms, completed_at, day, priced, cost_micros)
			SELECT CAST(? AS text), * FROM unnest(CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]),
				CAST(? AS bigint[]), CAST(? AS bigint[]), CAST(? AS bigint[]), CAST(? AS timestamptz[]),
				CAST(? AS integer[]), CAST(? AS boolean[]), CAST(? AS bigint[]))
			ON CONFLICT (tenant_id, job_id) DO NOTHING RETURNING job_id`),
		addRollup: r(`INSERT INTO daily_rollups (tenant_id, day, ` + cols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, day) DO UPDATE SET ` + strings.Join(rollupSets, ", ")),
		addTotal: r(`INSERT INTO daily_totals (day, shard, ` + cols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (day, shard) DO UPDATE SET ` + strings.Join(totalSets, ", ")),
		// A rollup holding an imported cost stays (see allocs).
		dropEmpty: r("DELETE FROM daily_rollups WHERE tenant_id = ? AND day = ?" + strings.Join(zero, "") +
			" AND NOT EXISTS (SELECT 1 FROM infra_costs i WHERE i.day = daily_rollups.day AND i.tenant_id = daily_rollups.tenant_id)"),

		insertEvent: r(`INSERT INTO stripe_events (event_id, type, customer_id, tenant_id, payment_key, currency,
				gross_cents, refunded_cents, at, received_at, held)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false) ON CONFLICT (event_id) DO NOTHING`),
		eventTenant:    r("SELECT tenant_id FROM stripe_events WHERE event_id = ?"),
		holdEvent:      r("UPDATE stripe_events SET held = true WHERE event_id = ?"),
		setEventTenant: r("UPDATE stripe_events SET tenant_id = ? WHERE event_id = ?"),
		// An event without a tenant locks its customer's row (a placeholder
		// with tenant '' when there is none) before reading it, so an event
		// bringing the tenant either commits first, and is seen, or waits
		// and then releases this one as held (see mapCustomer).
		claimCustomer:  r("INSERT INTO stripe_customers (customer_id, tenant_id) VALUES (?, '') ON CONFLICT (customer_id) DO NOTHING"),
		customerTenant: r("SELECT tenant_id FROM stripe_customers WHERE customer_id = ?" + forUpdate),
		// Returns a row only when this event tied the customer to its tenant:
		// the first mapping wins.
		mapCustomer: r(`INSERT INTO stripe_customers (customer_id, tenant_id) VALUES (?, ?)
			ON CONFLICT (customer_id) DO UPDATE SET tenant_id = excluded.tenant_id WHERE stripe_customers.tenant_id = ''
			RETURNING tenant_id`),
		releaseHeld: r(`UPDATE stripe_events SET held = false, tenant_id = ? WHERE customer_id = ? AND held
			RETURNING event_id, type, customer_id, payment_key, currency, gross_cents, refunded_cents, at`),

		getPayment: r(`SELECT payment_key, currency, gross_cents, refunded_cents, paid_at FROM payments
			WHERE tenant_id = ? AND payment_key = ?` + forUpdate),
		insertPayment: r(`INSERT INTO payments (tenant_id, payment_key, currency, gross_cents, refunded_cents, paid_at, day)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, payment_key) DO NOTHING`),
		updatePayment: r(`UPDATE payments SET currency = ?, gross_cents = ?, refunded_cents = ?, paid_at = ?, day = ?
			WHERE tenant_id = ? AND payment_key = ?`),
	}
	// The re-pricing job's batches, in key order after a key (a row value,
	// so both databases read usage_records_unpriced_key as one ordered
	// range), and its update, which changes only a record still unpriced
	// (so two replicas running the job at once price each record once: on
	// PostgreSQL the second waits for the first's row lock, then finds it
	// priced) and returns what the rollups need.
	s.q.unpricedUsage = r(`SELECT tenant_id, job_id, job_type, model, input_tokens, output_tokens, duration_ms, completed_at
		FROM usage_records WHERE NOT priced AND (tenant_id, job_id) > (?, ?)
		ORDER BY tenant_id, job_id LIMIT ?`)
	s.q.priceUsage = r(`UPDATE usage_records SET priced = true, cost_micros = ?
		WHERE tenant_id = ? AND job_id = ? AND NOT priced RETURNING day, input_tokens, output_tokens`)
	// Held events by event id: stripe_events_held_id for all of them,
	// stripe_events_held for one customer's.
	held := func(customer string) string {
		return r(`SELECT event_id, type, customer_id, payment_key, currency, gross_cents, refunded_cents, at, received_at
			FROM stripe_events WHERE held AND event_id > ?` + customer + ` ORDER BY event_id LIMIT ?`)
	}
	s.q.heldEvents, s.q.customerHeld = held(""), held(" AND customer_id = ?")
	// Every tenant's sums come from daily_totals; only the allocation,
	// rounded per tenant and day, reads each rollup, and only its job_count
	// (index-only, through daily_rollups_day). CROSS JOIN keeps d the outer
	// loop on SQLite, so each day's rollups are one range of the index
	// rather than each rollup a lookup of its day in d (half the time);
	// PostgreSQL plans it as any inner join.
	s.q.totals.all = r(dayJobs(true) + `
		SELECT t.*, a.* FROM (SELECT ` + sums("d.", true) + ` FROM d) t
		CROSS JOIN (SELECT ` + allocs(true) + ` FROM d CROSS JOIN daily_rollups r
			WHERE r.day = d.day AND r.day BETWEEN ? AND ?) a`)
	const rollupTenant = " AND r.tenant_id = ?"
	s.q.totals.tenant = r(rollupQuery(sums("r.", true)+", "+allocs(true), rollupTenant, ""))
	s.q.tenantTotals = scopedBy(func(tenant string) string {
		return r(rollupQuery("r.tenant_id, "+sums("r.", true)+", "+allocs(true),
			tenant+" AND r.tenant_id > ?", " GROUP BY r.tenant_id ORDER BY r.tenant_id LIMIT ?"))
	}, rollupTenant)
	s.q.dayTotals = scopedBy(func(tenant string) string {
		return r(rollupQuery("r.tenant_id, r.day, "+sums("r.", false)+", "+allocs(false),
			tenant, " ORDER BY r.day, r.tenant_id"))
	}, rollupTenant)
	// The series of every tenant reads daily_totals alone, one range of
	// its primary key grouped by day (the shards of a day are adjacent);
	// its infrastructure is the whole rate card, which needs no query. A
	// tenant's series is its rollups by their primary key, one row a day,
	// with the day's allocation: the query of DayTotals.
	s.q.daySeries = scoped{
		all: r(`SELECT day, ` + sumExprs(rollupColumns...) + `
			FROM daily_totals WHERE day BETWEEN ? AND ? GROUP BY day ORDER BY day`),
		tenant: s.q.dayTotals.tenant,
	}
	const rawTenant = "tenant_id = ? AND "
	// NOT priced as in the partial indexes' predicate, so both databases
	// read an index alone: usage_records_unpriced for a tenant,
	// usage_records_unpriced_day for every tenant.
	s.q.unpriced = scopedBy(func(tenant string) string {
		return r("SELECT DISTINCT model FROM usage_records WHERE " + tenant +
			"NOT priced AND day BETWEEN ? AND ? ORDER BY model")
	}, rawTenant)
	s.q.rawUsage = scopedBy(func(tenant string) string {
		return r(`SELECT ` + sumExprs(
			"cost_micros", "1", "input_tokens", "output_tokens",
			"CASE WHEN priced THEN 0 ELSE 1 END",
			"CASE WHEN priced THEN 0 ELSE input_tokens END",
			"CASE WHEN priced THEN 0 ELSE output_tokens END") +
			" FROM usage_records WHERE " + tenant + "day BETWEEN ? AND ?")
	}, rawTenant)
	// Each payment as Payment.NetCents, RefundCents and Counted.
	s.q.rawPayments = scopedBy(func(tenant string) string {
		return r(`SELECT ` + sumExprs(
			"CASE WHEN gross_cents > refunded_cents THEN gross_cents - refunded_cents ELSE 0 END",
			"CASE WHEN gross_cents > refunded_cents THEN refunded_cents ELSE gross_cents END",
			"CASE WHEN gross_cents > refunded_cents THEN 1 ELSE 0 END") +
			" FROM payments WHERE " + tenant + "day BETWEEN ? AND ?")
	}, rawTenant)
	return s
}

// dayJobs is the CTE d: per day of the range (the first two arguments),
// every tenant's jobs (d.jobs) and, with all, every sum, from daily_totals.
// MATERIALIZED, so that PostgreSQL computes it once rather than again for
// each rollup it is joined to.
func dayJobs(all bool) string {
	// imported: the day's infrastructure was imported (infra_days), so a
	// tenant's is its imported cost rather than a share of the rate card.
	columns := "CAST(SUM(job_count) AS bigint) AS jobs, EXISTS (SELECT 1 FROM infra_days i WHERE i.day = daily_totals.day) AS imported"
	if all {
		for _, c := range rollupColumns {
			columns += ", CAST(SUM(" + c + ") AS bigint) AS " + c
		}
	}
	return `WITH d AS MATERIALIZED (
			SELECT day, ` + columns + ` FROM daily_totals WHERE day BETWEEN ? AND ? GROUP BY day)`
}

// rollupQuery reads the rollups of a range of days with their allocations.
// Arguments: from, to (for d), the compute and database rates (of allocs),
// from, to, then those of where and tail. SUMs are cast to bigint as
// PostgreSQL sums bigint into numeric, which would make the divisions
// non-integer.
func rollupQuery(columns, where, tail string) string {
	return dayJobs(false) + `
		SELECT ` + columns + `
		FROM daily_rollups r JOIN d ON d.day = r.day
		WHERE r.day BETWEEN ? AND ?` + where + tail
}

// sums lists the rollup columns of prefix, summed when aggregate.
func sums(prefix string, aggregate bool) string {
	exprs := make([]string, len(rollupColumns))
	for i, c := range rollupColumns {
		exprs[i] = prefix + c
	}
	if aggregate {
		return sumExprs(exprs...)
	}
	return strings.Join(exprs, ", ")
}

// allocs are the two allocation columns: per rollup row, floor(rate × the
// tenant's jobs / all tenants' jobs) of that day, in integer arithmetic on
// both databases (operands are bigint), nothing on a day without jobs.
// On an imported day each is the tenant's imported cost instead (a lookup
// by primary key; the import keeps a rollup row for every tenant it
// charges, so none is missed).
func allocs(aggregate bool) string {
	part := func(column string) string {
		return "CASE WHEN d.imported THEN COALESCE((SELECT i." + column + ` FROM infra_costs i
			WHERE i.day = r.day AND i.tenant_id = r.tenant_id), 0)
			WHEN d.jobs > 0 THEN r.job_count * CAST(? AS bigint) / d.jobs ELSE 0 END`
	}
	c, d := part("compute_micros"), part("database_micros")
	if aggregate {
		return sumExprs(c, d)
	}
	return c + ", " + d
}

// sumExprs sums each expression, 0 over no rows, as bigint.
func sumExprs(exprs ...string) string {
	out := make([]string, len(exprs))
	for i, e := range exprs {
		out[i] = "CAST(COALESCE(SUM(" + e + "), 0) AS bigint)"
	}
	return strings.Join(out, ", ")
}

// Close closes the prepared statements and the database.
func (s *Store) Close() error { return errors.Join(s.stmts.Close(), s.db.Close()) }

// RecordUsage implements domain.Store: one transaction for the whole batch,
// tenant by tenant in tenant order (so concurrent batches lock rows in the
// same order), each under its own row-level-security scope.
func (s *Store) RecordUsage(ctx context.Context, recs []domain.UsageRecord) ([]bool, error) {
	isNew := make([]bool, len(recs))
	if len(recs) == 0 {
		return isNew, nil
	}
	groups := make(map[string][]int) // tenant → indexes of its records
	for i, rec := range recs {
		if rec.TenantID == "" {
			return nil, fmt.Errorf("record usage: record %d: %w", i, pstore.ErrNoTenant)
		}
		if rec.JobID == "" {
			return nil, fmt.Errorf("record usage: record %d has no job id", i)
		}
		groups[rec.TenantID] = append(groups[rec.TenantID], i)
	}
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		for _, tenant := range slices.Sorted(maps.Keys(groups)) {
			idx := groups[tenant]
			sub, subNew := make([]domain.UsageRecord, len(idx)), make([]bool, len(idx))
			first := make(map[string]int, len(idx)) // job id → index of its first record
			for k, i := range idx {
				sub[k] = recs[i]
				if _, ok := first[sub[k].JobID]; !ok {
					first[sub[k].JobID] = k
				}
			}
			if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
				return err
			}
			if err := s.insertUsage(ctx, tx, tenant, sub, first, subNew); err != nil {
				return err
			}
			deltas := make(map[int64]domain.Totals)
			for k, rec := range sub {
				if subNew[k] {
					d := deltas[domain.DayOf(rec.CompletedAt)]
					addUsage(&d, rec)
					deltas[domain.DayOf(rec.CompletedAt)] = d
				}
			}
			if err := s.addRollups(ctx, tx, tenant, deltas); err != nil {
				return err
			}
			for k, i := range idx {
				isNew[i] = subNew[k]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record usage: %w", err)
	}
	return isNew, nil
}

// insertUsage inserts the first record of each job id and marks in isNew
// those that were not stored yet.
func (s *Store) insertUsage(ctx context.Context, tx *sql.Tx, tenant string, recs []domain.UsageRecord, first map[string]int, isNew []bool) error {
	if s.db.Dialect != pstore.Postgres {
		st, err := s.stmts.In(ctx, tx, s.q.insertUsage)
		if err != nil {
			return err
		}
		for id, i := range first {
			rec := recs[i]
			res, err := st.ExecContext(ctx, tenant, id, rec.JobType, rec.Model, rec.InputTokens, rec.OutputTokens,
				rec.DurationMS, rec.CompletedAt.UTC(), domain.DayOf(rec.CompletedAt), rec.Priced, costOf(rec))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			isNew[i] = n == 1
		}
		return nil
	}
	// In job id order, so concurrent batches sharing jobs take their key
	// locks in the same order and cannot deadlock.
	ids := slices.Sorted(maps.Keys(first))
	var (
		types, models         = make([]string, len(ids)), make([]string, len(ids))
		inputs, outputs, durs = make([]int64, len(ids)), make([]int64, len(ids)), make([]int64, len(ids))
		at                    = make([]time.Time, len(ids))
		days, costs           = make([]int64, len(ids)), make([]int64, len(ids))
		priced                = make([]bool, len(ids))
	)
	for k, id := range ids {
		rec := recs[first[id]]
		types[k], models[k] = rec.JobType, rec.Model
		inputs[k], outputs[k], durs[k] = rec.InputTokens, rec.OutputTokens, rec.DurationMS
		at[k], days[k], priced[k], costs[k] = rec.CompletedAt.UTC(), domain.DayOf(rec.CompletedAt), rec.Priced, costOf(rec)
	}
	rows, err := s.stmts.Query(ctx, tx, s.q.insertUsageBatch,
		tenant, ids, types, models, inputs, outputs, durs, at, days, priced, costs)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		isNew[first[id]] = true
	}
	return rows.Err()
}

// costOf is the stored cost: an unpriced record costs nothing known.
func costOf(rec domain.UsageRecord) int64 {
	if !rec.Priced {
		return 0
	}
	return rec.CostMicros
}

func addUsage(t *domain.Totals, rec domain.UsageRecord) {
	t.JobCount++
	t.InputTokens += rec.InputTokens
	t.OutputTokens += rec.OutputTokens
	if rec.Priced {
		t.AICostMicros += rec.CostMicros
	} else {
		t.UnpricedJobs++
		t.UnpricedInputTokens += rec.InputTokens
		t.UnpricedOutputTokens += rec.OutputTokens
	}
}

// addRollups adds deltas (by day) to the tenant's rollups and to the
// day's totals of every tenant, in day order so that concurrent
// transactions lock rows in the same order; the totals, which tenants share,
// come last so that their locks are held only until the commit that
// follows. All-zero deltas write nothing. A subtraction (a payment moving to
// an earlier day) may leave a rollup of zeros, which is deleted: whether a
// rollup exists must not depend on the order events came in, as DayTotals
// and TenantTotals list the rollups there are.
func (s *Store) addRollups(ctx context.Context, tx *sql.Tx, tenant string, deltas map[int64]domain.Totals) error {
	days := slices.Sorted(maps.Keys(deltas))
	days = slices.DeleteFunc(days, func(day int64) bool { return deltas[day] == domain.Totals{} })
	for _, day := range days {
		d := deltas[day]
		if _, err := s.stmts.Exec(ctx, tx, s.q.addRollup, append([]any{tenant, day}, sumArgs(d)...)...); err != nil {
			return err
		}
		if d.RevenueCents < 0 || d.RefundedCents < 0 || d.PaymentCount < 0 {
			if _, err := s.stmts.Exec(ctx, tx, s.q.dropEmpty, tenant, day); err != nil {
				return err
			}
		}
	}
	shard := shardOf(tenant)
	for _, day := range days {
		if _, err := s.stmts.Exec(ctx, tx, s.q.addTotal, append([]any{day, shard}, sumArgs(deltas[day])...)...); err != nil {
			return err
		}
	}
	return nil
}

// totalShards is how many rows of daily_totals each day is spread over, so
// that PostgreSQL writers of different tenants seldom wait for the same row.
const totalShards = 16

// shardOf is the daily_totals shard tenant writes to.
func shardOf(tenant string) int64 {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int64(h.Sum32() % totalShards)
}

// sumArgs are the sums of t in the order of rollupColumns.
func sumArgs(t domain.Totals) []any {
	return []any{t.RevenueCents, t.RefundedCents, t.PaymentCount, t.AICostMicros, t.JobCount,
		t.InputTokens, t.OutputTokens, t.UnpricedJobs, t.UnpricedInputTokens, t.UnpricedOutputTokens}
}

// totalsDest points at the fields of t in the order of rollupColumns and
// then the two allocations.
func totalsDest(t *domain.Totals) []any {
	return []any{
		&t.RevenueCents, &t.RefundedCents, &t.PaymentCount, &t.AICostMicros, &t.JobCount,
		&t.InputTokens, &t.OutputTokens, &t.UnpricedJobs, &t.UnpricedInputTokens, &t.UnpricedOutputTokens,
		&t.AllocComputeMicros, &t.AllocDatabaseMicros,
	}
}

// ApplyPaymentEvent records ev in the inbox, finds its tenant, and merges it
// (and any held events its customer mapping releases) into the payments and
// their rollups, all in one transaction.
func (s *Store) ApplyPaymentEvent(ctx context.Context, ev domain.PaymentEvent) (domain.PaymentOutcome, error) {
	if ev.EventID == "" || ev.PaymentKey == "" {
		return domain.PaymentOutcome{}, fmt.Errorf("apply payment event %q: no event id or payment key", ev.EventID)
	}
	var out domain.PaymentOutcome
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) (err error) {
		out, err = s.applyEvent(ctx, tx, ev)
		return err
	})
	if err != nil {
		return domain.PaymentOutcome{}, fmt.Errorf("apply payment event %s: %w", ev.EventID, err)
	}
	return out, nil
}

func (s *Store) applyEvent(ctx context.Context, tx *sql.Tx, ev domain.PaymentEvent) (domain.PaymentOutcome, error) {
	res, err := s.stmts.Exec(ctx, tx, s.q.insertEvent, ev.EventID, ev.Type, ev.CustomerID, ev.TenantID,
		ev.PaymentKey, ev.Currency, ev.GrossCents, ev.RefundedCents, ev.At.UTC(), time.Now().UTC())
	if err != nil {
		return domain.PaymentOutcome{}, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return domain.PaymentOutcome{}, err
	} else if n == 0 {
		out := domain.PaymentOutcome{Outcome: domain.OutcomeDuplicate}
		err := s.stmts.QueryRow(ctx, tx, s.q.eventTenant, ev.EventID).Scan(&out.TenantID)
		return out, err
	}

	tenant := ev.TenantID
	if tenant == "" && ev.CustomerID != "" {
		if _, err := s.stmts.Exec(ctx, tx, s.q.claimCustomer, ev.CustomerID); err != nil {
			return domain.PaymentOutcome{}, err
		}
		if err := s.stmts.QueryRow(ctx, tx, s.q.customerTenant, ev.CustomerID).Scan(&tenant); err != nil {
			return domain.PaymentOutcome{}, err
		}
	}
	if tenant == "" {
		_, err := s.stmts.Exec(ctx, tx, s.q.holdEvent, ev.EventID)
		return domain.PaymentOutcome{Outcome: domain.OutcomeHeld}, err
	}

	events := []domain.PaymentEvent{ev}
	if ev.TenantID != "" && ev.CustomerID != "" {
		_, released, err := s.mapCustomer(ctx, tx, ev.CustomerID, tenant)
		if err != nil {
			return domain.PaymentOutcome{}, err
		}
		events = append(events, released...)
	} else if ev.TenantID == "" {
		if _, err := s.stmts.Exec(ctx, tx, s.q.setEventTenant, tenant, ev.EventID); err != nil {
			return domain.PaymentOutcome{}, err
		}
	}
	if err := s.applyFor(ctx, tx, tenant, events); err != nil {
		return domain.PaymentOutcome{}, err
	}
	return domain.PaymentOutcome{Outcome: domain.OutcomeApplied, TenantID: tenant}, nil
}

// applyFor merges events into tenant's payments and rollups. From here on
// the transaction writes tenant data, so it is scoped first.
func (s *Store) applyFor(ctx context.Context, tx *sql.Tx, tenant string, events []domain.PaymentEvent) error {
	if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
		return err
	}
	deltas := make(map[int64]domain.Totals)
	for _, e := range events {
		if err := s.mergePayment(ctx, tx, tenant, e, deltas); err != nil {
			return err
		}
	}
	return s.addRollups(ctx, tx, tenant, deltas)
}

// mapCustomer ties customer to tenant unless it is tied already (tied
// false); when this call ties it, it releases the customer's held events
// and returns them to be applied for tenant.
func (s *Store) mapCustomer(ctx context.Context, tx *sql.Tx, customer, tenant string) (tied bool, released []domain.PaymentEvent, err error) {
	var mapped string
	err = s.stmts.QueryRow(ctx, tx, s.q.mapCustomer, customer, tenant).Scan(&mapped)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil, nil // an earlier event tied it: nothing is held
	}
	if err != nil {
		return false, nil, err
	}
	rows, err := s.stmts.Query(ctx, tx, s.q.releaseHeld, tenant, customer)
	events, err := pstore.All(rows, err, func(rows *sql.Rows) (e domain.PaymentEvent, err error) {
		e.TenantID = tenant
		return e, rows.Scan(&e.EventID, &e.Type, &e.CustomerID, &e.PaymentKey, &e.Currency,
			&e.GrossCents, &e.RefundedCents, &e.At)
	})
	if err != nil {
		return false, nil, err
	}
	// Merging is order-independent, but a fixed order keeps lock order and
	// results reproducible.
	slices.SortFunc(events, func(a, b domain.PaymentEvent) int { return cmp.Compare(a.EventID, b.EventID) })
	return true, events, nil
}

// mergePayment merges ev into its payment under a row lock and adds the
// change of the payment's contribution to deltas. A payment not stored yet is
// inserted; when a concurrent transaction inserted it first, the insert does
// nothing and the payment is read again, now locked.
func (s *Store) mergePayment(ctx context.Context, tx *sql.Tx, tenant string, ev domain.PaymentEvent, deltas map[int64]domain.Totals) error {
	for {
		old := domain.Payment{TenantID: tenant}
		err := s.stmts.QueryRow(ctx, tx, s.q.getPayment, tenant, ev.PaymentKey).Scan(
			&old.Key, &old.Currency, &old.GrossCents, &old.RefundedCents, &old.PaidAt)
		found := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		p := old.Merge(ev)
		if found {
			if p.Currency == old.Currency && p.GrossCents == old.GrossCents &&
				p.RefundedCents == old.RefundedCents && p.PaidAt.Equal(old.PaidAt) {
				return nil // nothing new, as for a replayed state
			}
			if _, err := s.stmts.Exec(ctx, tx, s.q.updatePayment, p.Currency, p.GrossCents, p.RefundedCents,
				p.PaidAt, p.Day(), tenant, p.Key); err != nil {
				return err
			}
			addPayment(deltas, old, -1)
			addPayment(deltas, p, 1)
			return nil
		}
		res, err := s.stmts.Exec(ctx, tx, s.q.insertPayment, tenant, p.Key, p.Currency, p.GrossCents,
			p.RefundedCents, p.PaidAt, p.Day())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			addPayment(deltas, p, 1)
			return nil
		}
	}
}

// addPayment adds sign × p's contribution to the rollup of its day.
func addPayment(deltas map[int64]domain.Totals, p domain.Payment, sign int64) {
	d := deltas[p.Day()]
	d.RevenueCents += sign * p.NetCents()
	d.RefundedCents += sign * p.RefundCents()
	if p.Counted() {
		d.PaymentCount += sign
	}
	deltas[p.Day()] = d
}

// reportTx runs fn in a read-only transaction of scope: every tenant's rows
// for an admin's view (fn runs the queries' all variant, scoped.of), else
// the tenant's own, with the tenant as an argument of the query (the tenant
// variant; tenantArgs holds it), so the WHERE clause and, on PostgreSQL,
// row-level security both scope it. The allocation's denominator comes from
// daily_totals, which holds no tenant's rows.
func (s *Store) reportTx(ctx context.Context, scope domain.Scope, fn func(tx *sql.Tx, tenantArgs []any) error) error {
	if scope.All {
		return s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error { return fn(tx, nil) })
	}
	return s.db.InTenantReadTx(ctx, scope.Tenant, func(tx *sql.Tx) error { return fn(tx, []any{scope.Tenant}) })
}

// reportArgs are the leading arguments of the report queries.
func reportArgs(days domain.Days, rate domain.RateCard) []any {
	return []any{days.From, days.To, rate.ComputeMicrosPerDay, rate.DatabaseMicrosPerDay, days.From, days.To}
}

// Totals sums the scope's rollups with their allocations in one statement.
func (s *Store) Totals(ctx context.Context, scope domain.Scope, days domain.Days, rate domain.RateCard) (domain.Totals, error) {
	var t domain.Totals
	// Every summary's read: one statement, so on PostgreSQL one round trip
	// with its scope (ReadRow).
	args := reportArgs(days, rate)
	if !scope.All {
		args = append(args, scope.Tenant)
	}
	if err := s.stmts.ReadRow(ctx, scope.Tenant, scope.All, s.q.totals.of(scope), args, totalsDest(&t)...); err != nil {
		return domain.Totals{}, fmt.Errorf("totals: %w", err)
	}
	return t, nil
}

// TenantTotals groups the scope's rollups by tenant, a page at a time.
func (s *Store) TenantTotals(ctx context.Context, scope domain.Scope, days domain.Days, rate domain.RateCard, after string, limit int) ([]domain.TenantTotals, error) {
	if limit < 1 {
		return nil, fmt.Errorf("tenant totals: limit %d, want at least 1", limit)
	}
	var out []domain.TenantTotals
	err := s.reportTx(ctx, scope, func(tx *sql.Tx, tenantArgs []any) error {
		args := append(append(reportArgs(days, rate), tenantArgs...), after, limit)
		rows, err := s.stmts.Query(ctx, tx, s.q.tenantTotals.of(scope), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t domain.TenantTotals
			if err := rows.Scan(append([]any{&t.TenantID}, totalsDest(&t.Totals)...)...); err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("tenant totals: %w", err)
	}
	return out, nil
}

// DayTotals streams the scope's rollup rows with their allocations, in day
// then tenant order (the order of daily_rollups_day, so nothing is sorted).
func (s *Store) DayTotals(ctx context.Context, scope domain.Scope, days domain.Days, rate domain.RateCard, fn func(domain.DayTotals) error) error {
	err := s.reportTx(ctx, scope, func(tx *sql.Tx, tenantArgs []any) error {
		rows, err := s.stmts.Query(ctx, tx, s.q.dayTotals.of(scope), append(reportArgs(days, rate), tenantArgs...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t domain.DayTotals
			if err := rows.Scan(append([]any{&t.TenantID, &t.Day}, totalsDest(&t.Totals)...)...); err != nil {
				return err
			}
			if err := fn(t); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("day totals: %w", err)
	}
	return nil
}

// DaySeries implements domain.Store: one grouped read of the rollups
// over the whole range, never a query per day.
func (s *Store) DaySeries(ctx context.Context, scope domain.Scope, days domain.Days, rate domain.RateCard) ([]domain.DayTotals, error) {
	var out []domain.DayTotals
	err := s.reportTx(ctx, scope, func(tx *sql.Tx, tenantArgs []any) error {
		if scope.All {
			rows, err := s.stmts.Query(ctx, tx, s.q.daySeries.all, days.From, days.To)
			out, err = pstore.All(rows, err, func(rows *sql.Rows) (t domain.DayTotals, err error) {
				return t, rows.Scan(append([]any{&t.Day}, totalsDest(&t.Totals)[:len(rollupColumns)]...)...)
			})
			return err
		}
		rows, err := s.stmts.Query(ctx, tx, s.q.daySeries.tenant, append(reportArgs(days, rate), tenantArgs...)...)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (t domain.DayTotals, err error) {
			return t, rows.Scan(append([]any{&t.TenantID, &t.Day}, totalsDest(&t.Totals)...)...)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("day series: %w", err)
	}
	return out, nil
}

// UnpricedModels reads the unpriced-usage index alone.
func (s *Store) UnpricedModels(ctx context.Context, scope domain.Scope, days domain.Days) ([]string, error) {
	var models []string
	err := s.reportTx(ctx, scope, func(tx *sql.Tx, args []any) (err error) {
		models, err = pstore.Strings(s.stmts.Query(ctx, tx, s.q.unpriced.of(scope), append(args, days.From, days.To)...))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("unpriced models: %w", err)
	}
	return models, nil
}

// RawTotals sums usage_records and payments directly. It is a consistency
// check, not a report: it reads every raw row of the scope.
func (s *Store) RawTotals(ctx context.Context, scope domain.Scope, days domain.Days) (domain.Totals, error) {
	var t domain.Totals
	err := s.reportTx(ctx, scope, func(tx *sql.Tx, args []any) error {
		args = append(args, days.From, days.To)
		err := s.stmts.QueryRow(ctx, tx, s.q.rawUsage.of(scope), args...).Scan(&t.AICostMicros, &t.JobCount,
			&t.InputTokens, &t.OutputTokens, &t.UnpricedJobs, &t.UnpricedInputTokens, &t.UnpricedOutputTokens)
		if err != nil {
			return err
		}
		return s.stmts.QueryRow(ctx, tx, s.q.rawPayments.of(scope), args...).Scan(&t.RevenueCents, &t.RefundedCents, &t.PaymentCount)
	})
	if err != nil {
		return domain.Totals{}, fmt.Errorf("raw totals: %w", err)
	}
	return t, nil
}
