// Package store implements domain.Store on SQLite and PostgreSQL with one set
// of queries. Every query on tenant data names its tenant in the WHERE
// clause; on PostgreSQL, row-level security checks the same again. The one
// exceptions hold no tenant data: the code registry (referral_codes), which
// a public click reads before it knows the tenant, the visitor marks of
// clicks (click_dedup, keyed hashes) and the deployment's keys.
//
// Event ids live in two spaces (referral_events.source, part of the
// primary key): the ids a tenant gives its events, and the ids the service
// gives referral-link clicks. Nothing a visitor sends reaches the first.
//
// Reports read per referral and day sums (referral_daily), which
// RecordEvents keeps in the transaction that records the events. A write
// transaction takes its locks in one order: the events' inbox rows by event
// id, then the conversions' rows by conversion id, then the rollups by code
// and day, so concurrent batches on PostgreSQL cannot deadlock. On SQLite
// the single writer serializes them anyway.
package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the growth schema, for (*pstore.DB).Migrate.
var Migrations = pstore.EmbeddedMigrations(migrationFiles, "growth_schema_version")

// claimTries bounds the draws of a new code: with 31^8 codes a second draw
// is rare, an eighth means a broken generator.
const claimTries = 8

// The id spaces of referral_events.source.
const (
	sourceTenant = "tenant" // ids the tenant gave (RecordEvents)
	sourceLink   = "link"   // ids the service gave referral-link clicks
)

// pruneBatch bounds the visitor marks one DELETE transaction removes.
const pruneBatch = 1000

// Store is the SQL domain.Store.
type Store struct {
	db    *pstore.DB
	stmts *pstore.Stmts
	q     queries
}

var _ domain.Store = (*Store)(nil)

// queries are the constant statements, rebound for the dialect once. The
// report queries come in four variants by filter (see filterVariant).
type queries struct {
	findReferral, claimCode, insertReferral, releaseCode string
	allTime, findCodes, findOwners, landingURL           string
	insertEvent, getEvent, referralInfo                  string
	lockState, updateState, addRollup                    string
	putCampaign, campaigns, payouts                      string
	countCampaigns, lockCampaigns                        string
	markClick, pruneMarks, insertKey, getKey             string
	totals, leaderboard                                  [4]string
	commissions, batchConversions, insertBatch, getBatch string
	payBatch, payConversions, batchSums                  string
	stateCommissionPayouts, batchCommissionPayouts       string
}

// counts are the sums of referral_daily, in the order of domain.Counts.
var counts = []string{"clicks", "signups", "conversions", "self_referrals", "revenue_cents", "refunded_cents", "payout_cents"}

// New returns a Store on db, which must be migrated with Migrations. The
// Store owns db: Close closes it.
func New(db *pstore.DB) *Store {
	s := &Store{db: db, stmts: pstore.NewStmts(db)}
	r := db.Rebind
	cols := strings.Join(counts, ", ")
	var sets, windowSums, coalesced []string
	for _, c := range counts {
		sets = append(sets, c+" = referral_daily."+c+" + excluded."+c)
		windowSums = append(windowSums, "CAST(SUM("+c+") AS bigint) AS "+c)
		coalesced = append(coalesced, "COALESCE(w."+c+", 0)")
	}
	// in is a list of placeholders for every candidate of a typed code;
	// shorter lists repeat their last candidate (see candidateArgs), so one
	// statement serves them all.
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", code.MaxCandidates), ", ") + ")"
	// window sums each referral's rollups over a range of days: arguments
	// tenant, from, to.
	window := `(SELECT referral_code, ` + strings.Join(windowSums, ", ") + ` FROM referral_daily
			WHERE tenant_id = ? AND day BETWEEN ? AND ? GROUP BY referral_code) w`
	s.q = queries{
		findReferral: r(`SELECT referral_code, referrer_id, campaign, created_at FROM referrals
			WHERE tenant_id = ? AND referrer_id = ? AND campaign = ?`),
		claimCode:   r("INSERT INTO referral_codes (code, tenant_id) VALUES (?, ?) ON CONFLICT (code) DO NOTHING"),
		releaseCode: r("DELETE FROM referral_codes WHERE code = ? AND tenant_id = ?"),
		insertReferral: r(`INSERT INTO referrals (tenant_id, referral_code, referrer_id, campaign, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, referrer_id, campaign) DO NOTHING`),
		allTime: r("SELECT " + sumExprs(counts...) + " FROM referral_daily WHERE tenant_id = ? AND referral_code = ?"),
		findCodes: r("SELECT DISTINCT referral_code FROM referrals WHERE tenant_id = ? AND referral_code IN " + in +
			" ORDER BY referral_code"),
		findOwners: r("SELECT DISTINCT code, tenant_id FROM referral_codes WHERE code IN " + in + " ORDER BY code"),
		landingURL: r(`SELECT COALESCE(c.landing_url, '') FROM referrals r
			LEFT JOIN campaigns c ON c.tenant_id = r.tenant_id AND c.campaign = r.campaign
			WHERE r.tenant_id = ? AND r.referral_code = ?`),

		insertEvent: r(`INSERT INTO referral_events (tenant_id, source, event_id, type, referral_code, customer_id,
				amount_cents, refund_of, occurred_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, source, event_id) DO NOTHING`),
		getEvent: r(`SELECT type, referral_code, customer_id, amount_cents, refund_of FROM referral_events
			WHERE tenant_id = ? AND source = '` + sourceTenant + `' AND event_id = ?`),
		referralInfo: r(`SELECT r.referrer_id, c.rate_bps FROM referrals r
			LEFT JOIN campaigns c ON c.tenant_id = r.tenant_id AND c.campaign = r.campaign
			WHERE r.tenant_id = ? AND r.referral_code = ?`),
		// Creates the conversion's row unless it exists and returns it,
		// locked until the transaction ends: a concurrent conversion or
		// refund of the same id waits here, on PostgreSQL, until this one
		// commits, then reads what it wrote. The update that changes
		// nothing is what takes the lock (and makes RETURNING answer for an
		// existing row too).
		lockState: r(`INSERT INTO conversions (tenant_id, conversion_id, known, referral_code, day, revenue_cents,
				rate_bps, self_referral, refund_cents, refund_all)
			VALUES (?, ?, false, '', 0, 0, 0, false, 0, false)
			ON CONFLICT (tenant_id, conversion_id) DO UPDATE SET known = conversions.known
			RETURNING known, referral_code, day, revenue_cents, rate_bps, self_referral, refund_cents, refund_all,
				occurred_at, hold_until, paid_at IS NOT NULL`),
		updateState: r(`UPDATE conversions SET known = ?, referral_code = ?, day = ?, revenue_cents = ?, rate_bps = ?,
				self_referral = ?, refund_cents = ?, refund_all = ?, occurred_at = ?, hold_until = ?
			WHERE tenant_id = ? AND conversion_id = ?`),
		addRollup: r(`INSERT INTO referral_daily (tenant_id, referral_code, day, ` + cols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, referral_code, day) DO UPDATE SET ` + strings.Join(sets, ", ")),

		putCampaign: r(`INSERT INTO campaigns (tenant_id, campaign, rate_bps, landing_url, updated_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, campaign) DO UPDATE SET
				rate_bps = excluded.rate_bps, landing_url = excluded.landing_url, updated_at = excluded.updated_at`),
		campaigns: r(`SELECT campaign, rate_bps, landing_url, updated_at FROM campaigns
			WHERE tenant_id = ? AND campaign > ? ORDER BY campaign LIMIT ?`),
		// How many campaigns the tenant has, and whether one of them is the
		// named one.
		countCampaigns: r(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN campaign = ? THEN 1 ELSE 0 END), 0)
			FROM campaigns WHERE tenant_id = ?`),
		lockCampaigns: r("SELECT pg_advisory_xact_lock(?)"),
		// Sets the mark of a visitor key to this click unless it marks a
		// click counted after the window's start, and returns what it marks
		// now: this click (count it) or the earlier one (a repeat). Every
		// SET expression reads the row as it was. On PostgreSQL a
		// concurrent click of the same key waits on the row (or on the
		// insert of it) and then decides on the committed mark.
		markClick: r(`INSERT INTO click_dedup (click_key, counted_at, click_id) VALUES (?, ?, ?)
			ON CONFLICT (click_key) DO UPDATE SET
				counted_at = CASE WHEN click_dedup.counted_at <= ? THEN excluded.counted_at ELSE click_dedup.counted_at END,
				click_id = CASE WHEN click_dedup.counted_at <= ? THEN excluded.click_id ELSE click_dedup.click_id END
			RETURNING counted_at, click_id`),
		pruneMarks: r(`DELETE FROM click_dedup WHERE click_key IN (
			SELECT click_key FROM click_dedup WHERE counted_at < ? LIMIT ?)`),
		insertKey: r("INSERT INTO deployment_keys (name, key_hex) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
		getKey:    r("SELECT key_hex FROM deployment_keys WHERE name = ?"),
		// The rollups of a tenant are read in code order (the primary key),
		// so the grouping streams and LIMIT stops it after a page.
		payouts: r(`SELECT w.referral_code, r.referrer_id, r.campaign, w.signups, w.conversions, w.revenue_cents, w.payout_cents
			FROM (SELECT referral_code, ` + strings.Join(windowSums, ", ") + ` FROM referral_daily
				WHERE tenant_id = ? AND referral_code > ? AND day BETWEEN ? AND ?
				GROUP BY referral_code HAVING SUM(payout_cents) >= ? ORDER BY referral_code LIMIT ?) w
			JOIN referrals r ON r.tenant_id = ? AND r.referral_code = w.referral_code
			ORDER BY w.referral_code`),
	}
	s.commissionQueries()
	// Without a filter the totals need not join: the tenant's rollups
	// alone, and a count of its referrals.
	s.q.totals[0] = r(`SELECT (SELECT COUNT(*) FROM referrals WHERE tenant_id = ?), ` + sumExprs(counts...) +
		` FROM referral_daily WHERE tenant_id = ? AND day BETWEEN ? AND ?`)
	for v := range 4 {
		where := "r.tenant_id = ?" + filterSQL(v)
		from := " FROM referrals r LEFT JOIN " + window + " ON w.referral_code = r.referral_code WHERE " + where
		if v > 0 {
			s.q.totals[v] = r("SELECT COUNT(*), " + sumExprs(prefixed("w.", counts)...) + from)
		}
		// Keyset pagination on (net revenue descending, code); the first
		// page starts after (MaxInt64, "").
		s.q.leaderboard[v] = r("SELECT r.referral_code, r.referrer_id, r.campaign, r.created_at, " +
			strings.Join(coalesced, ", ") + from + `
			AND (COALESCE(w.revenue_cents, 0) < ? OR (COALESCE(w.revenue_cents, 0) = ? AND r.referral_code > ?))
			ORDER BY COALESCE(w.revenue_cents, 0) DESC, r.referral_code LIMIT ?`)
	}
	return s
}

// filterVariant numbers the filters: bit 0 referrer, bit 1 campaign.
func filterVariant(f domain.Filter) int {
	v := 0
	if f.ReferrerID != "" {
		v |= 1
	}
	if f.Campaign != "" {
		v |= 2
	}
	return v
}

func filterSQL(v int) string {
	s := ""
	if v&1 != 0 {
		s += " AND r.referrer_id = ?"
	}
	if v&2 != 0 {
		s += " AND r.campaign = ?"
	}
	return s
}

func filterArgs(f domain.Filter) []any {
	var args []any
	if f.ReferrerID != "" {
		args = append(args, f.ReferrerID)
	}
	if f.Campaign != "" {
		args = append(args, f.Campaign)
	}
	return args
}

func prefixed(prefix string, cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = prefix + c
	}
	return out
}

// sumExprs sums each expression, 0 over no rows, as bigint (PostgreSQL sums
// bigint into numeric).
func sumExprs(exprs ...string) string {
	out := make([]string, len(exprs))
	for i, e := range exprs {
		out[i] = "CAST(COALESCE(SUM(" + e + "), 0) AS bigint)"
	}
	return strings.Join(out, ", ")
}

func countsDest(c *domain.Counts) []any {
	return []any{&c.Clicks, &c.Signups, &c.Conversions, &c.SelfReferrals, &c.RevenueCents, &c.RefundedCents, &c.PayoutCents}
}

func countsArgs(c domain.Counts) []any {
	return []any{c.Clicks, c.Signups, c.Conversions, c.SelfReferrals, c.RevenueCents, c.RefundedCents, c.PayoutCents}
}

// candidateArgs pads candidates to code.MaxCandidates by repeating the last.
func candidateArgs(candidates []string) ([]any, error) {
	if len(candidates) == 0 || len(candidates) > code.MaxCandidates {
		return nil, fmt.Errorf("%d code candidates, want 1 to %d", len(candidates), code.MaxCandidates)
	}
	args := make([]any, code.MaxCandidates)
	for i := range args {
		args[i] = candidates[min(i, len(candidates)-1)]
	}
	return args, nil
}

// Close closes the prepared statements and the database.
func (s *Store) Close() error { return errors.Join(s.stmts.Close(), s.db.Close()) }

// CreateReferral implements domain.Store. On PostgreSQL two concurrent
// creates of the same referrer and campaign both claim a code; the second
// insert of the referral waits for the first to commit, does nothing, and
// its transaction releases its code and returns the first one's referral.
func (s *Store) CreateReferral(ctx context.Context, tenant string, ref domain.Referral, newCode func() (string, error)) (domain.Referral, bool, error) {
	var (
		out   domain.Referral
		isNew bool
	)
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		found, err := s.findReferral(ctx, tx, tenant, ref.ReferrerID, ref.Campaign)
		if err != nil || found != nil {
			out = deref(found)
			return err
		}
		c, err := code.Claim(newCode, func(c string) (bool, error) {
			return affected(s.stmts.Exec(ctx, tx, s.q.claimCode, c, tenant))
		}, claimTries)
		if err != nil {
			return err
		}
		ref.Code = c
		inserted, err := affected(s.stmts.Exec(ctx, tx, s.q.insertReferral, tenant, ref.Code, ref.ReferrerID, ref.Campaign, ref.CreatedAt))
		if err != nil {
			return err
		}
		if inserted {
			out, isNew = ref, true
			return nil
		}
		if _, err := s.stmts.Exec(ctx, tx, s.q.releaseCode, c, tenant); err != nil {
			return err
		}
		found, err = s.findReferral(ctx, tx, tenant, ref.ReferrerID, ref.Campaign)
		if err == nil && found == nil {
			err = errors.New("referral vanished after a conflicting insert")
		}
		out = deref(found)
		return err
	})
	if err != nil {
		return domain.Referral{}, false, fmt.Errorf("create referral: %w", err)
	}
	return out, isNew, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// affected reports whether an insert changed one row.
func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *Store) findReferral(ctx context.Context, tx *sql.Tx, tenant, referrer, campaign string) (*domain.Referral, error) {
	var r domain.Referral
	err := s.stmts.QueryRow(ctx, tx, s.q.findReferral, tenant, referrer, campaign).Scan(&r.Code, &r.ReferrerID, &r.Campaign, &r.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &r, err
}

// AllTimeCounts implements domain.Store.
func (s *Store) AllTimeCounts(ctx context.Context, tenant, c string) (domain.Counts, error) {
	var out domain.Counts
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		return s.stmts.QueryRow(ctx, tx, s.q.allTime, tenant, c).Scan(countsDest(&out)...)
	})
	if err != nil {
		return domain.Counts{}, fmt.Errorf("all-time counts: %w", err)
	}
	return out, nil
}

// FindCodes implements domain.Store.
func (s *Store) FindCodes(ctx context.Context, tenant string, candidates []string) ([]string, error) {
	args, err := candidateArgs(candidates)
	if err != nil {
		return nil, err
	}
	var found []string
	err = s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		found, err = pstore.Strings(s.stmts.Query(ctx, tx, s.q.findCodes, append([]any{tenant}, args...)...))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find codes: %w", err)
	}
	return found, nil
}

// FindCodeOwners implements domain.Store. It reads only the registry, which
// has no row-level security, so no tenant scope is needed.
func (s *Store) FindCodeOwners(ctx context.Context, candidates []string) ([]domain.CodeOwner, error) {
	args, err := candidateArgs(candidates)
	if err != nil {
		return nil, err
	}
	var out []domain.CodeOwner
	err = s.db.InTx(ctx, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, s.q.findOwners, args...)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (o domain.CodeOwner, err error) {
			return o, rows.Scan(&o.Code, &o.Tenant)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find code owners: %w", err)
	}
	return out, nil
}

// LandingURL implements domain.Store.
func (s *Store) LandingURL(ctx context.Context, tenant, c string) (string, error) {
	var u string
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) error {
		return s.stmts.QueryRow(ctx, tx, s.q.landingURL, tenant, c).Scan(&u)
	})
	if err != nil {
		return "", fmt.Errorf("landing URL: %w", err)
	}
	return u, nil
}

// RecordEvents implements domain.Store in three passes, each taking its
// locks in a fixed order (see the package comment): the inbox finds
// replays, the conversions merge, the rollups add up.
func (s *Store) RecordEvents(ctx context.Context, tenant string, evs []domain.Event, terms domain.Terms) ([]domain.EventOutcome, error) {
	out := make([]domain.EventOutcome, len(evs))
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		fresh, err := s.inbox(ctx, tx, tenant, evs, out)
		if err != nil {
			return err
		}
		deltas := make(map[rollupKey]domain.Counts)
		if err := s.mergeConversions(ctx, tx, tenant, evs, fresh, terms, deltas, out); err != nil {
			return err
		}
		for _, i := range fresh {
			e := evs[i]
			switch e.Type {
			case domain.EventClick:
				addDelta(deltas, rollupKey{e.Code, domain.DayOf(e.OccurredAt)}, domain.Counts{Clicks: 1})
			case domain.EventSignup:
				addDelta(deltas, rollupKey{e.Code, domain.DayOf(e.OccurredAt)}, domain.Counts{Signups: 1})
			}
		}
		return s.addRollups(ctx, tx, tenant, deltas)
	})
	if err != nil {
		return nil, fmt.Errorf("record events: %w", err)
	}
	return out, nil
}

// inbox stores each event once by id, in id order, and returns the indexes
// of the events that were new. Replays are marked in out; an id reused
// with different content fails the whole batch.
func (s *Store) inbox(ctx context.Context, tx *sql.Tx, tenant string, evs []domain.Event, out []domain.EventOutcome) ([]int, error) {
	order := make([]int, len(evs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(evs[a].ID, evs[b].ID) })
	var fresh []int
	for _, i := range order {
		e := evs[i]
		inserted, err := affected(s.stmts.Exec(ctx, tx, s.q.insertEvent, tenant, sourceTenant, e.ID, string(e.Type), e.Code,
			e.CustomerID, e.AmountCents, e.RefundOf, e.OccurredAt.UTC()))
		if err != nil {
			return nil, err
		}
		if inserted {
			fresh = append(fresh, i)
			out[i].Code = e.Code
			continue
		}
		stored := domain.Event{ID: e.ID}
		var typ string
		if err := s.stmts.QueryRow(ctx, tx, s.q.getEvent, tenant, e.ID).Scan(&typ, &stored.Code, &stored.CustomerID,
			&stored.AmountCents, &stored.RefundOf); err != nil {
			return nil, err
		}
		stored.Type = domain.EventType(typ)
		if !stored.Same(e) {
			return nil, fmt.Errorf("event %q: %w", e.ID, domain.ErrEventIDReused)
		}
		out[i] = domain.EventOutcome{Code: stored.Code, Duplicate: true}
	}
	return fresh, nil
}

// mergeConversions folds the new conversions and refunds into their
// conversions' states, conversion by conversion in id order, and adds the
// change of each state's contribution to deltas.
func (s *Store) mergeConversions(ctx context.Context, tx *sql.Tx, tenant string, evs []domain.Event, fresh []int,
	terms domain.Terms, deltas map[rollupKey]domain.Counts, out []domain.EventOutcome) error {
	byConversion := make(map[string][]int)
	for _, i := range fresh {
		switch e := evs[i]; e.Type {
		case domain.EventConversion:
			byConversion[e.ID] = append(byConversion[e.ID], i)
		case domain.EventRefund:
			byConversion[e.RefundOf] = append(byConversion[e.RefundOf], i)
		}
	}
	for _, id := range slices.Sorted(mapKeys(byConversion)) {
		old, err := s.lockState(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		st := old
		for _, i := range byConversion[id] {
			e := evs[i]
			if e.Type == domain.EventRefund {
				if st, err = st.MergeRefund(e.AmountCents); err != nil {
					return fmt.Errorf("refund %q of conversion %q: %w", e.ID, id, err)
				}
				continue
			}
			referrer, bps, err := s.referralInfo(ctx, tx, tenant, e.Code, terms.DefaultBPS)
			if err != nil {
				return err
			}
			self := e.CustomerID != "" && e.CustomerID == referrer
			st = st.MergeConversion(e.Code, e.OccurredAt.UTC(), e.AmountCents, bps, terms.Hold, self)
		}
		if _, err := s.stmts.Exec(ctx, tx, s.q.updateState, st.Known, st.Code, st.Day, st.RevenueCents, st.RateBPS,
			st.SelfReferral, st.RefundCents, st.RefundAll, pstore.NullTime(st.OccurredAt), pstore.NullTime(st.HoldUntil), tenant, id); err != nil {
			return err
		}
		if st.Known {
			addDelta(deltas, rollupKey{st.Code, st.Day}, st.Contribution().Sub(old.Contribution()))
		}
		for _, i := range byConversion[id] {
			if st.Known {
				out[i].Code = st.Code
			}
			out[i].SelfReferral = evs[i].Type == domain.EventConversion && st.SelfReferral
		}
	}
	return nil
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (s *Store) referralInfo(ctx context.Context, tx *sql.Tx, tenant, c string, defaultBPS int64) (string, int64, error) {
	var (
		referrer string
		bps      sql.NullInt64
	)
	if err := s.stmts.QueryRow(ctx, tx, s.q.referralInfo, tenant, c).Scan(&referrer, &bps); err != nil {
		return "", 0, fmt.Errorf("referral %s: %w", c, err)
	}
	if !bps.Valid {
		bps.Int64 = defaultBPS
	}
	return referrer, bps.Int64, nil
}

// lockState reads a conversion's state, creating it as the zero state,
// and locks it on PostgreSQL until the transaction ends.
func (s *Store) lockState(ctx context.Context, tx *sql.Tx, tenant, id string) (domain.ConversionState, error) {
	var (
		st       domain.ConversionState
		at, hold sql.NullTime
	)
	err := s.stmts.QueryRow(ctx, tx, s.q.lockState, tenant, id).Scan(&st.Known, &st.Code, &st.Day, &st.RevenueCents,
		&st.RateBPS, &st.SelfReferral, &st.RefundCents, &st.RefundAll, &at, &hold, &st.Paid)
	st.OccurredAt, st.HoldUntil = at.Time, hold.Time
	return st, err
}

// rollupKey is one row of referral_daily.
type rollupKey struct {
	code string
	day  int64
}

func addDelta(deltas map[rollupKey]domain.Counts, k rollupKey, d domain.Counts) {
	deltas[k] = deltas[k].Add(d)
}

// addRollups adds deltas in key order; all-zero deltas write nothing.
func (s *Store) addRollups(ctx context.Context, tx *sql.Tx, tenant string, deltas map[rollupKey]domain.Counts) error {
	keys := slices.SortedFunc(mapKeys(deltas), func(a, b rollupKey) int {
		return cmp.Or(cmp.Compare(a.code, b.code), cmp.Compare(a.day, b.day))
	})
	for _, k := range keys {
		d := deltas[k]
		if d == (domain.Counts{}) {
			continue
		}
		if _, err := s.stmts.Exec(ctx, tx, s.q.addRollup, append([]any{tenant, k.code, k.day}, countsArgs(d)...)...); err != nil {
			return err
		}
	}
	return nil
}

// Totals implements domain.Store.
func (s *Store) Totals(ctx context.Context, tenant string, f domain.Filter, days domain.Days) (int64, domain.Counts, error) {
	var (
		n int64
		c domain.Counts
	)
	v := filterVariant(f)
	args := []any{tenant, tenant, days.From, days.To}
	if v > 0 {
		args = append([]any{tenant, days.From, days.To, tenant}, filterArgs(f)...)
	}
	// Every listing's reads (this and Leaderboard) are one statement each:
	// on PostgreSQL one round trip with the tenant's scope.
	if err := s.stmts.ReadRow(ctx, tenant, false, s.q.totals[v], args, append([]any{&n}, countsDest(&c)...)...); err != nil {
		return 0, domain.Counts{}, fmt.Errorf("totals: %w", err)
	}
	return n, c, nil
}

// Leaderboard implements domain.Store.
func (s *Store) Leaderboard(ctx context.Context, tenant string, f domain.Filter, days domain.Days, after *domain.Rank, limit int) ([]domain.ReferralCounts, error) {
	rank := domain.Rank{RevenueCents: math.MaxInt64}
	if after != nil {
		rank = *after
	}
	args := append([]any{tenant, days.From, days.To, tenant}, filterArgs(f)...)
	args = append(args, rank.RevenueCents, rank.RevenueCents, rank.Code, limit)
	out, err := pstore.ReadAll(ctx, s.stmts, tenant, false, s.q.leaderboard[filterVariant(f)], args, func(rows pstore.Rows) (rc domain.ReferralCounts, err error) {
		return rc, rows.Scan(append([]any{&rc.Code, &rc.ReferrerID, &rc.Campaign, &rc.CreatedAt}, countsDest(&rc.Counts)...)...)
	})
	if err != nil {
		return nil, fmt.Errorf("leaderboard: %w", err)
	}
	return out, nil
}

// Payouts implements domain.Store.
func (s *Store) Payouts(ctx context.Context, tenant string, days domain.Days, minCents int64, after string, limit int) ([]domain.PayoutRow, error) {
	var out []domain.PayoutRow
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, s.q.payouts, tenant, after, days.From, days.To, minCents, limit, tenant)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (p domain.PayoutRow, err error) {
			return p, rows.Scan(&p.Code, &p.ReferrerID, &p.Campaign, &p.Signups, &p.Conversions, &p.RevenueCents, &p.PayoutCents)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("payouts: %w", err)
	}
	return out, nil
}

// PutCampaign implements domain.Store. The count and the insert share one
// transaction, and concurrent puts of one tenant take turns: on PostgreSQL
// through a transaction-level advisory lock per tenant, taken before the
// count reads (so under READ COMMITTED it sees what the previous holder
// committed); on SQLite through the single writer.
func (s *Store) PutCampaign(ctx context.Context, tenant string, c domain.Campaign, limit int) error {
	var rate sql.NullInt64
	if c.RateBPS != nil {
		rate = sql.NullInt64{Int64: *c.RateBPS, Valid: true}
	}
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		if s.db.Dialect == pstore.Postgres {
			if _, err := s.stmts.Exec(ctx, tx, s.q.lockCampaigns, campaignLockID(tenant)); err != nil {
				return err
			}
		}
		var n, exists int
		if err := s.stmts.QueryRow(ctx, tx, s.q.countCampaigns, c.Name, tenant).Scan(&n, &exists); err != nil {
			return err
		}
		if exists == 0 && n >= limit {
			return fmt.Errorf("tenant has %d campaigns: %w", n, domain.ErrCampaignLimit)
		}
		_, err := s.stmts.Exec(ctx, tx, s.q.putCampaign, tenant, c.Name, rate, c.LandingURL, c.UpdatedAt.UTC())
		return err
	})
	if err != nil {
		return fmt.Errorf("put campaign: %w", err)
	}
	return nil
}

// Campaigns implements domain.Store.
func (s *Store) Campaigns(ctx context.Context, tenant, after string, limit int) ([]domain.Campaign, error) {
	var out []domain.Campaign
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		rows, err := s.stmts.Query(ctx, tx, s.q.campaigns, tenant, after, limit)
		out, err = pstore.All(rows, err, func(rows *sql.Rows) (c domain.Campaign, err error) {
			var rate sql.NullInt64
			if err := rows.Scan(&c.Name, &rate, &c.LandingURL, &c.UpdatedAt); err != nil {
				return c, err
			}
			if rate.Valid {
				c.RateBPS = &rate.Int64
			}
			return c, nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("campaigns: %w", err)
	}
	return out, nil
}

// campaignLockID is the advisory lock of tenant's campaigns. Two tenants
// whose ids hash alike merely take turns.
func campaignLockID(tenant string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("echopilot.growth.campaigns\x00" + tenant))
	return int64(h.Sum64())
}

// RecordLinkClick implements domain.Store: in one transaction it marks the
// visitor keys (the first decides, see markClick; the others then mark the
// same click), and a click that counts becomes an event in the link id
// space and one more click in its rollup. Keys are marked before the
// rollup is touched, and only link clicks mark keys, so the lock order of
// the package comment still holds.
func (s *Store) RecordLinkClick(ctx context.Context, tenant string, c domain.LinkClick, since time.Time) (bool, error) {
	var counted bool
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		counted = true
		markAt, markID := c.OccurredAt.UTC(), c.ID
		for i, key := range c.VisitorKeys {
			var (
				at time.Time
				id string
			)
			if err := s.stmts.QueryRow(ctx, tx, s.q.markClick, key, markAt, markID, since.UTC(), since.UTC()).Scan(&at, &id); err != nil {
				return fmt.Errorf("mark visitor: %w", err)
			}
			if i == 0 {
				counted = id == c.ID
				markAt, markID = at, id
			}
		}
		if !counted {
			return nil
		}
		inserted, err := affected(s.stmts.Exec(ctx, tx, s.q.insertEvent, tenant, sourceLink, c.ID, string(domain.EventClick),
			c.Code, "", 0, "", c.OccurredAt.UTC()))
		if err != nil {
			return err
		}
		if !inserted {
			return fmt.Errorf("click id %q is taken", c.ID)
		}
		return s.addRollups(ctx, tx, tenant, map[rollupKey]domain.Counts{
			{c.Code, domain.DayOf(c.OccurredAt)}: {Clicks: 1},
		})
	})
	if err != nil {
		return false, fmt.Errorf("record link click: %w", err)
	}
	return counted, nil
}

// PruneClickMarks implements domain.Store, pruneBatch marks per
// transaction. On error it returns the marks deleted so far.
func (s *Store) PruneClickMarks(ctx context.Context, before time.Time) (int64, error) {
	var deleted int64
	for {
		var n int64
		err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
			res, err := s.stmts.Exec(ctx, tx, s.q.pruneMarks, before.UTC(), pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("prune click marks: %w", err)
		}
		deleted += n
		if n < pruneBatch {
			return deleted, nil
		}
	}
}

// DeploymentKey returns the deployment's secret key of the given name, 32
// random bytes made by whichever replica asks first and kept in the
// database, so that every replica, now and after restarts, uses the same.
func (s *Store) DeploymentKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("deployment key %s: %w", name, err)
	}
	var stored string
	err := s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.stmts.Exec(ctx, tx, s.q.insertKey, name, hex.EncodeToString(fresh)); err != nil {
			return err
		}
		return s.stmts.QueryRow(ctx, tx, s.q.getKey, name).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("deployment key %s: %w", name, err)
	}
	key, err := hex.DecodeString(stored)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("deployment key %s: stored key is not 32 or more hex bytes", name)
	}
	return key, nil
}
