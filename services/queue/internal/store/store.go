// Package store implements domain.Store on SQLite and PostgreSQL with one set
// of queries. Every query names its tenant in the WHERE clause; on
// PostgreSQL, row-level security checks the same again.
//
// The job path (enqueue, claim, complete) runs in transactions shared by
// concurrent callers (group commit, see group.go). The two databases differ
// only in small fragments: PostgreSQL claims rows with FOR UPDATE SKIP
// LOCKED so concurrent claims pass each other, where SQLite runs one write
// transaction at a time; PostgreSQL announces new jobs with NOTIFY for other
// replicas' long polls (announce.go); multi-row statements take their rows as arrays on
// PostgreSQL and as VALUES lists on SQLite (rows.go); and "now plus the
// leased length" is spelled per dialect.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the queue schema, for (*pstore.DB).Migrate. The outbox's
// own migrations (outbox.Migrations) must be applied too.
var Migrations = pstore.EmbeddedMigrations(migrationFiles, "queue_schema_version")

const (
	// expireBatch bounds the expired leases handled per statement, so one
	// transaction never locks an unbounded number of rows.
	expireBatch = 1000
	// deleteBatch rows per DELETE transaction, so pruning a large backlog
	// never holds the SQLite write lock or PostgreSQL row locks for long.
	deleteBatch = 1000
	// notifyChannel is the PostgreSQL channel announcing runnable jobs; the
	// payload is the tenant id.
	notifyChannel = "echopilot_queue_jobs"
	// expiredError is the last_error of a job whose lease ran out.
	expiredError = "lease expired"
	// pgGroups is how many shared write transactions run at a time on
	// PostgreSQL.
	pgGroups = 4
)

// Store is the SQL domain.Store.
type Store struct {
	db    *pstore.DB
	stmts *pstore.Stmts
	q     queries
	// skipLocked ends a claim's row selection: on PostgreSQL it locks the
	// rows and passes over those another transaction holds.
	skipLocked string
	// group shares transactions between concurrent per-job writes.
	group *group
	// announcer notifies other replicas of new jobs; nil on SQLite, which
	// is embedded in one process.
	announcer *announcer
}

// queries are the constant statements, rebound for the dialect once.
type queries struct {
	byKey, get, getForUpdate, expire  string
	startAttempt                      string
	heartbeatTo, heartbeatRenew, fail string
	counts, deleteFinished            string
	// The worker registry's (workers.go).
	touchWorker, countTenantWorkers, insertWorker string
	listWorkers, countWorkers, deleteWorkers      string
	// Worker tokens' (workertokens.go).
	insertToken, getToken, listTokens, revokeToken string
	extendToken, tokenStates, deleteTokens         string
}

// New returns a Store on db, which must be migrated with Migrations and
// outbox.Migrations. The Store owns db: Close closes it.
func New(db *pstore.DB) *Store {
	s := &Store{db: db, stmts: pstore.NewStmts(db)}
	var forUpdate, renewal string
	counts := countsSQLite
	switch db.Dialect {
	case pstore.Postgres:
		counts = countsPostgres
		s.skipLocked = " FOR UPDATE SKIP LOCKED"
		forUpdate = " FOR UPDATE"
		renewal = "CAST(? AS timestamptz) + lease_seconds * interval '1 second'"
	default:
		// Times are unix microseconds in SQLite (see platform/store).
		renewal = "? + lease_seconds * 1000000"
	}
	// SQLite has one writer, so one shared transaction at a time; on
	// PostgreSQL a few run side by side, overlapping their round trips.
	s.group = &group{s: s, max: 1}
	if db.Dialect == pstore.Postgres {
		s.group.max = pgGroups
		s.announcer = &announcer{db: db}
	}
	r := db.Rebind
	s.q = queries{
		byKey:        r("SELECT " + jobColumns + " FROM jobs WHERE tenant_id = ? AND idempotency_key = ? AND idempotency_key <> ''"),
		get:          r("SELECT " + jobColumns + " FROM jobs WHERE tenant_id = ? AND id = ?"),
		getForUpdate: r("SELECT " + jobColumns + " FROM jobs WHERE tenant_id = ? AND id = ?" + forUpdate),
		// Only processing jobs are read (through jobs_leased or jobs_state);
		// they are locked like claims.
		expire: r(`
			WITH e AS MATERIALIZED (
				SELECT id AS expired_id FROM jobs
				WHERE tenant_id = ? AND state = 'processing' AND lease_expires_at <= ?
				ORDER BY lease_expires_at
				LIMIT ?` + s.skipLocked + `)
			UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
				lease_expires_at = NULL, last_error = ?, updated_at = ?, ` + endAttemptSQL(domain.OutcomeLeaseExpired) + `
			FROM e WHERE tenant_id = ? AND id = e.expired_id
			RETURNING id, state`),
		heartbeatTo:    r("UPDATE jobs SET lease_expires_at = ?, updated_at = ?" + leasedWhere + " RETURNING " + leasedColumns),
		heartbeatRenew: r("UPDATE jobs SET lease_expires_at = " + renewal + ", updated_at = ?" + leasedWhere + " RETURNING " + leasedColumns),
		fail: r("UPDATE jobs SET state = ?, run_at = ?, last_error = ?, lease_expires_at = NULL, updated_at = ?, " +
			endAttemptSQL(domain.OutcomeFailed) +
			leasedWhere + " RETURNING " + leasedColumns),
		startAttempt: startAttemptSQL(db.Dialect),
		counts:       r(counts),
		deleteFinished: r(`
			DELETE FROM jobs WHERE tenant_id = ? AND id IN (
				SELECT id FROM jobs WHERE tenant_id = ? AND state IN ('completed', 'dead', 'cancelled')
					AND updated_at < ? LIMIT ?)
			RETURNING id`),
		touchWorker:        r(touchWorkerSQL),
		countTenantWorkers: r(countTenantWorkersSQL),
		insertWorker:       r(insertWorkerSQL),
		listWorkers:        r(listWorkersSQL),
		countWorkers:       r(countWorkersSQL),
		deleteWorkers:      r(deleteWorkersSQL),
		insertToken:        r(insertTokenSQL),
		getToken:           r(getTokenSQL),
		listTokens:         r(listTokensSQL),
		revokeToken:        r(revokeTokenSQL),
		extendToken:        r(extendTokenSQL),
		tokenStates:        r(tokenStatesSQL),
		deleteTokens:       r(deleteTokensSQL),
	}
	return s
}

// Counts' query: a tenant's jobs by state, type and priority (the caller
// sums the rows, in any order), from counters, however many jobs. On
// SQLite triggers keep them in job_counts (migration sqlite/00002). On
// PostgreSQL triggers append deltas that FoldCounts folds into job_counts
// (postgres/00007, 00009): the tenant's counter rows plus its deltas not folded
// yet, in one statement.
const (
	countsSQLite   = "SELECT state, type, prio, n FROM job_counts WHERE tenant_id = ? AND n > 0"
	countsPostgres = `SELECT state, type, prio, sum(n)::bigint FROM (
		SELECT state, type, prio, n FROM job_counts WHERE tenant_id = $1
		UNION ALL
		SELECT state, type, prio, d FROM job_count_deltas WHERE tenant_id = $1
	) c GROUP BY state, type, prio HAVING sum(n) > 0`
)

// FoldCounts folds the counters' deltas into them on PostgreSQL (up to
// 100,000 a call) and returns how many it folded; SQLite keeps no deltas.
// The service runs it every second.
func (s *Store) FoldCounts(ctx context.Context) (int64, error) {
	if s.db.Dialect != pstore.Postgres {
		return 0, nil
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT queue_fold_counts()").Scan(&n); err != nil {
		return 0, fmt.Errorf("fold counts: %w", err)
	}
	return n, nil
}

// leasedWhere matches a job only under the lease of the last four
// arguments: tenant, job id, worker id, token.
const leasedWhere = " WHERE tenant_id = ? AND id = ? AND state = 'processing' AND worker_id = ? AND lease_token = ?"

// Close closes the prepared statements and the database.
func (s *Store) Close() error { return errors.Join(s.stmts.Close(), s.db.Close()) }

// jobColumns are read by scanJob, in this order.
const jobColumns = `tenant_id, id, seq, type, prio, state, payload, idempotency_key, attempts, max_attempts,
	run_at, created_at, updated_at, worker_id, lease_token, lease_seconds, lease_expires_at, result,
	usage_model, usage_input_tokens, usage_output_tokens, usage_duration_ms, last_error,
	retried_by, retried_at, cancelled_by`

// leasedColumns are jobColumns and the start of the latest attempt, read
// by scanLeased: what the statements ending or extending a lease return,
// so the run time is known without another read.
const leasedColumns = jobColumns + ", attempt_started_at"

type scanner interface{ Scan(dest ...any) error }

func scanLeased(row scanner) (domain.Job, error) {
	var started sql.NullTime
	j, err := scanJob(row, &started)
	if started.Valid {
		j.AttemptStartedAt = started.Time
	}
	return j, err
}

// scanJob reads jobColumns, then the extra columns after them into extra.
func scanJob(row scanner, extra ...any) (domain.Job, error) {
	var (
		j               domain.Job
		state           string
		payload         string
		leaseExpiresAt  sql.NullTime
		retriedAt       sql.NullTime
		result          sql.NullString
		prio, att, maxA int64
		leaseSeconds    int64
	)
	err := row.Scan(append([]any{&j.TenantID, &j.ID, &j.Seq, &j.Type, &prio, &state, &payload, &j.IdempotencyKey, &att, &maxA,
		&j.RunAt, &j.CreatedAt, &j.UpdatedAt, &j.WorkerID, &j.LeaseToken, &leaseSeconds, &leaseExpiresAt, &result,
		&j.Usage.Model, &j.Usage.InputTokens, &j.Usage.OutputTokens, &j.Usage.DurationMS, &j.LastError,
		&j.RetriedBy, &retriedAt, &j.CancelledBy}, extra...)...)
	if err != nil {
		return domain.Job{}, err
	}
	j.Priority, j.Status, j.Payload = domain.Priority(prio), domain.Status(state), []byte(payload)
	j.Attempts, j.MaxAttempts, j.LeaseSeconds = int(att), int(maxA), int(leaseSeconds)
	if leaseExpiresAt.Valid {
		j.LeaseExpiresAt = leaseExpiresAt.Time
	}
	if result.Valid {
		j.Result = []byte(result.String)
	}
	if retriedAt.Valid {
		j.RetriedAt = retriedAt.Time
	}
	return j, nil
}

func scanJobs(rows *sql.Rows) ([]domain.Job, error) {
	return scanAll(rows, func(r scanner) (domain.Job, error) { return scanJob(r) })
}

func scanAll(rows *sql.Rows, scan func(scanner) (domain.Job, error)) ([]domain.Job, error) {
	defer rows.Close()
	var jobs []domain.Job
	for rows.Next() {
		j, err := scan(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// Enqueue inserts j, or finds the job that already holds its idempotency
// key. It shares a transaction and a statement with concurrent enqueues
// (see group).
func (s *Store) Enqueue(ctx context.Context, j domain.NewJob) (domain.Job, bool, error) {
	op := &groupOp{ctx: ctx, tenant: j.TenantID, kind: opEnqueue, newJob: j}
	s.group.do(op)
	if op.err != nil {
		return domain.Job{}, false, fmt.Errorf("enqueue job: %w", op.err)
	}
	return op.job, op.duplicate, nil
}

// EnqueueBatch inserts js, all of one tenant, with one statement in one
// transaction of their own: a batch is already the sharing the group
// would give it, and it must commit or fail as a whole.
func (s *Store) EnqueueBatch(ctx context.Context, js []domain.NewJob) ([]domain.Job, []bool, error) {
	ops := make([]*groupOp, len(js))
	for i, j := range js {
		if j.TenantID == "" || j.TenantID != js[0].TenantID {
			return nil, nil, fmt.Errorf("enqueue batch: jobs of one tenant only: %w", pstore.ErrNoTenant)
		}
		ops[i] = &groupOp{ctx: ctx, tenant: j.TenantID, kind: opEnqueue, newJob: j}
	}
	if _, err := s.writeOps(ctx, ops); err != nil {
		return nil, nil, fmt.Errorf("enqueue batch: %w", err)
	}
	stored, dups := make([]domain.Job, len(ops)), make([]bool, len(ops))
	for i, op := range ops {
		stored[i], dups[i] = op.job, op.duplicate
	}
	return stored, dups, nil
}

// enqueueMany inserts the jobs of ops, all of one tenant, with one INSERT.
// ON CONFLICT DO NOTHING on the partial unique index skips a job whose
// idempotency key the tenant already used, by an earlier row of the same
// statement too; a racer's insert that is not committed yet makes the
// statement wait for it. RETURNING names the rows inserted; the others are
// duplicates, read back by key (in PostgreSQL's READ COMMITTED each
// statement takes a new snapshot, so the winner's row is visible).
func (s *Store) enqueueMany(ctx context.Context, tx *sql.Tx, b *batch, ops []*groupOp) error {
	r := newRowSet(colText, colText, colText, colInt, colText, colText, colInt, colTime, colTime)
	for _, op := range ops {
		j := op.newJob
		r.add(j.TenantID, j.ID, j.Type, int64(j.Priority), string(j.Payload), j.IdempotencyKey,
			int64(j.MaxAttempts), j.RunAt, j.CreatedAt)
	}
	source, args := r.source(s.db.Dialect)
	// WHERE true: SQLite would otherwise read ON CONFLICT as a join's ON.
	query := s.db.Rebind(`
		WITH r (c_tenant, c_id, c_type, c_prio, c_payload, c_key, c_max_attempts, c_run_at, c_created_at) AS (` + source + `)
		INSERT INTO jobs (tenant_id, id, type, prio, state, payload, idempotency_key, max_attempts, run_at, created_at, updated_at)
		SELECT c_tenant, c_id, c_type, c_prio, 'queued', c_payload, c_key, c_max_attempts, c_run_at, c_created_at, c_created_at
		FROM r WHERE true
		ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key <> '' DO NOTHING
		RETURNING ` + jobColumns)
	rows, err := s.stmts.Query(ctx, tx, query, args...)
	if err != nil {
		return err
	}
	inserted, err := scanJobs(rows)
	if err != nil {
		return err
	}
	byID := make(map[string]domain.Job, len(inserted))
	for _, j := range inserted {
		byID[j.ID] = j
	}
	for _, op := range ops {
		op.err = nil
		if j, ok := byID[op.newJob.ID]; ok {
			op.job, op.duplicate = j, false
			if !j.RunAt.After(j.CreatedAt) {
				b.wake(j.TenantID)
			}
			continue
		}
		op.duplicate = true
		if op.job, err = scanJob(s.stmts.QueryRow(ctx, tx, s.q.byKey, op.tenant, op.newJob.IdempotencyKey)); err != nil {
			return err
		}
	}
	return nil
}

// Get reads one job.
func (s *Store) Get(ctx context.Context, tenant, id string) (domain.Job, error) {
	var j domain.Job
	err := s.db.InTenantReadTx(ctx, tenant, func(tx *sql.Tx) (err error) {
		j, err = s.get(ctx, tx, s.q.get, tenant, id)
		return err
	})
	if err != nil {
		return domain.Job{}, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

// get reads one job with query (q.get or q.getForUpdate).
func (s *Store) get(ctx context.Context, tx *sql.Tx, query, tenant, id string) (domain.Job, error) {
	j, err := scanJob(s.stmts.QueryRow(ctx, tx, query, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Job{}, domain.ErrNotFound
	}
	return j, err
}

// List pages by id (a ULID, so newest first), keyset style so a page costs
// the same wherever it starts. With a status filter it walks jobs_state.
func (s *Store) List(ctx context.Context, f domain.ListFilter) ([]domain.Job, error) {
	if f.Limit < 1 {
		return nil, fmt.Errorf("list jobs: limit %d, want at least 1", f.Limit)
	}
	where, args := "tenant_id = ?", []any{f.TenantID}
	if f.Status != "" {
		where, args = where+" AND state = ?", append(args, string(f.Status))
	}
	if f.Type != "" {
		where, args = where+" AND type = ?", append(args, f.Type)
	}
	if f.HasPriority {
		where, args = where+" AND prio = ?", append(args, int64(f.Priority))
	}
	if f.BeforeID != "" {
		where, args = where+" AND id < ?", append(args, f.BeforeID)
	}
	query := s.db.Rebind("SELECT " + jobColumns + " FROM jobs WHERE " + where + " ORDER BY id DESC LIMIT ?")
	var jobs []domain.Job
	err := s.db.InTenantReadTx(ctx, f.TenantID, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, query, append(args, f.Limit)...)
		if err != nil {
			return err
		}
		jobs, err = scanJobs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// Counts counts the tenant's live jobs (see countsSQLite, countsPostgres).
func (s *Store) Counts(ctx context.Context, tenant string) ([]domain.Count, error) {
	var counts []domain.Count
	// One statement: on PostgreSQL one round trip with its tenant setting.
	err := s.stmts.ReadScoped(ctx, tenant, false, s.q.counts, []any{tenant}, func(rows pstore.Rows) error {
		for rows.Next() {
			var (
				c     domain.Count
				state string
				prio  int64
			)
			if err := rows.Scan(&state, &c.Type, &prio, &c.N); err != nil {
				return err
			}
			c.Status, c.Priority = domain.Status(state), domain.Priority(prio)
			counts = append(counts, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return counts, nil
}

// claimQuery leases the first runnable jobs in priority order. The CTE is
// MATERIALIZED so the selection (and, on PostgreSQL, its row locks) runs
// exactly once; an `id IN (subquery)` may be re-run by the planner and lease
// more rows than the limit. The selection reads jobs_runnable, whose
// predicate and column order match the WHERE and ORDER BY; the tenant's
// paused types (a few rows, read once per statement by their primary key)
// only filter the rows it walks.
func (s *Store) claimQuery(types int) string {
	typeFilter := ""
	if types > 0 {
		typeFilter = " AND type IN (" + strings.TrimSuffix(strings.Repeat("?, ", types), ", ") + ")"
	}
	// The SET list's right-hand sides read the row as it was, so the
	// attempt that ended is logged with its own token and worker.
	update := `UPDATE jobs SET state = 'processing', worker_id = ?, lease_token = lease_token + 1, lease_seconds = ?,
			lease_expires_at = ?, attempts = attempts + 1, updated_at = ?, ` + s.q.startAttempt + `
		FROM c WHERE tenant_id = ? AND id = c.claim_id
		RETURNING ` + jobColumns
	return s.db.Rebind(`
		WITH c AS MATERIALIZED (
			SELECT id AS claim_id FROM jobs
			WHERE tenant_id = ? AND state IN ('queued', 'failed') AND run_at <= ?` + typeFilter + `
				AND type NOT IN (SELECT job_type FROM paused_job_types WHERE tenant_id = ?)
			ORDER BY prio, run_at, seq
			LIMIT ?` + s.skipLocked + `)
		` + update)
}

// Claim requeues the tenant's expired leases and then leases runnable
// jobs. It shares a transaction with concurrent writes (see group).
func (s *Store) Claim(ctx context.Context, c domain.Claim) ([]domain.Lease, domain.Expiry, error) {
	op := &groupOp{ctx: ctx, tenant: c.TenantID, kind: opClaim, claim: c}
	s.group.do(op)
	if op.err != nil {
		return nil, domain.Expiry{}, fmt.Errorf("claim jobs: %w", op.err)
	}
	return op.leases, op.expiry, nil
}

// claimJobs runs one claim in tx.
func (s *Store) claimJobs(ctx context.Context, tx *sql.Tx, op *groupOp) error {
	c := op.claim
	var err error
	if op.expiry, err = s.expire(ctx, tx, c.TenantID, c.Now); err != nil {
		return err
	}
	args := make([]any, 0, 9+len(c.Types))
	args = append(args, c.TenantID, c.Now)
	for _, t := range c.Types {
		args = append(args, t)
	}
	args = append(args, c.TenantID, c.Max, c.WorkerID, int(c.LeaseFor/time.Second), c.Now.Add(c.LeaseFor), c.Now, c.Now, c.TenantID)
	rows, err := s.stmts.Query(ctx, tx, s.claimQuery(len(c.Types)), args...)
	if err != nil {
		return err
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return err
	}
	// RETURNING follows no order: restore the claim's.
	slices.SortFunc(jobs, func(a, b domain.Job) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), a.RunAt.Compare(b.RunAt), cmp.Compare(a.Seq, b.Seq))
	})
	op.leases = make([]domain.Lease, len(jobs))
	for i, j := range jobs {
		op.leases[i] = domain.Lease{Job: j, Token: j.LeaseToken}
	}
	op.err = nil
	return nil
}

// ExpireLeases requeues the tenant's expired leases, in batches.
func (s *Store) ExpireLeases(ctx context.Context, tenant string, now time.Time) (domain.Expiry, error) {
	var total domain.Expiry
	for {
		var e domain.Expiry
		err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) (err error) {
			e, err = s.expire(ctx, tx, tenant, now)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("expire leases of %q: %w", tenant, err)
		}
		total.Requeued += e.Requeued
		total.Dead += e.Dead
		if e.Total() < expireBatch {
			return total, nil
		}
	}
}

// expire returns up to expireBatch expired leases of the tenant to the
// queue: the attempt they started stays counted, and a job that has used
// all its attempts is dead instead. The job keeps its run_at, so it goes
// back to the front of its priority.
func (s *Store) expire(ctx context.Context, tx *sql.Tx, tenant string, now time.Time) (domain.Expiry, error) {
	rows, err := s.stmts.Query(ctx, tx, s.q.expire, tenant, now, expireBatch, expiredError, now, now, tenant)
	if err != nil {
		return domain.Expiry{}, err
	}
	var e domain.Expiry
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var id, state string
			if err := rows.Scan(&id, &state); err != nil {
				return err
			}
			if domain.Status(state) == domain.StatusDead {
				e.Dead++
			} else {
				e.Requeued++
			}
		}
		return rows.Err()
	}()
	if err != nil {
		return domain.Expiry{}, err
	}
	return e, nil
}

// updateLeased runs one of the UPDATE … RETURNING queries conditioned on
// ref's lease (leasedWhere, whose arguments it appends); when that matches
// nothing it reads the job to say why.
func (s *Store) updateLeased(ctx context.Context, tx *sql.Tx, ref domain.LeaseRef, query string, args ...any) (domain.Job, error) {
	args = append(args, ref.TenantID, ref.JobID, ref.WorkerID, ref.Token)
	j, err := scanLeased(s.stmts.QueryRow(ctx, tx, query, args...))
	if !errors.Is(err, sql.ErrNoRows) {
		return j, err
	}
	return s.conflict(ctx, tx, ref.TenantID, ref.JobID)
}

// Heartbeat moves the lease end of ref's job.
func (s *Store) Heartbeat(ctx context.Context, ref domain.LeaseRef, extend time.Duration, now time.Time) (domain.Job, error) {
	query, until := s.q.heartbeatRenew, now
	if extend > 0 {
		query, until = s.q.heartbeatTo, now.Add(extend)
	}
	var j domain.Job
	err := s.db.InTenantTx(ctx, ref.TenantID, func(tx *sql.Tx) (err error) {
		j, err = s.updateLeased(ctx, tx, ref, query, until, now)
		return err
	})
	return j, wrapLeased("heartbeat", ref, err)
}

// Complete finishes ref's job and writes its outbox event in the same
// transaction: the event exists if and only if the completion does. It
// shares a transaction and a statement with concurrent completions (see
// group).
func (s *Store) Complete(ctx context.Context, ref domain.LeaseRef, c domain.Completion) (domain.Job, error) {
	res, err := s.CompleteBatch(ctx, domain.CompleteBatch{Refs: []domain.LeaseRef{ref}, Completions: []domain.Completion{c}})
	if err != nil {
		return domain.Job{}, err
	}
	return res.Jobs[0], res.Errs[0]
}

// CompleteBatch completes b's leases and runs b.Then's claim in one
// transaction shared with other callers' writes (see group).
func (s *Store) CompleteBatch(ctx context.Context, b domain.CompleteBatch) (domain.CompleteBatchResult, error) {
	ops := make([]*groupOp, 0, len(b.Refs)+1)
	for i, ref := range b.Refs {
		ops = append(ops, &groupOp{ctx: ctx, tenant: ref.TenantID, kind: opComplete, ref: ref, completion: b.Completions[i]})
	}
	var claim *groupOp
	if b.Then != nil {
		claim = &groupOp{ctx: ctx, tenant: b.Then.TenantID, kind: opClaim, claim: *b.Then}
		ops = append(ops, claim)
	}
	s.group.do(ops...)
	res := domain.CompleteBatchResult{Jobs: make([]domain.Job, len(b.Refs)), Errs: make([]error, len(b.Refs))}
	for i, ref := range b.Refs {
		res.Jobs[i], res.Errs[i] = ops[i].job, wrapLeased("complete", ref, ops[i].err)
	}
	if claim != nil {
		if claim.err != nil {
			return res, fmt.Errorf("claim jobs: %w", claim.err)
		}
		res.Leases, res.Expiry = claim.leases, claim.expiry
	}
	return res, nil
}

// completeMany completes the leases of ops, all of one tenant, with one
// UPDATE joined to the completions, then reads back the jobs it did not
// match to say why (domain.ErrConflict or domain.ErrNotFound), then adds
// the outbox events of those it did. Ops naming a job named before in ops
// run after the others, alone, so they see its first completion as a
// caller that came second would.
func (s *Store) completeMany(ctx context.Context, tx *sql.Tx, ops []*groupOp) error {
	var first, again []*groupOp
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if seen[op.ref.JobID] {
			again = append(again, op)
		} else {
			seen[op.ref.JobID] = true
			first = append(first, op)
		}
	}
	r := newRowSet(colText, colText, colInt, colText, colText, colInt, colInt, colInt, colTime)
	for _, op := range first {
		c := op.completion
		r.add(op.ref.JobID, op.ref.WorkerID, op.ref.Token, string(c.Result), c.Usage.Model,
			c.Usage.InputTokens, c.Usage.OutputTokens, c.Usage.DurationMS, c.Now)
	}
	source, args := r.source(s.db.Dialect)
	keys, keyArgs := r.keys(s.db.Dialect, 0)
	update := `UPDATE jobs SET state = 'completed', result = v.c_result, usage_model = v.c_model,
			usage_input_tokens = v.c_input, usage_output_tokens = v.c_output, usage_duration_ms = v.c_duration,
			lease_expires_at = NULL, updated_at = v.c_now, attempt_ended_at = v.c_now, attempt_outcome = 'completed'
		FROM v
		WHERE tenant_id = ? AND id = v.c_id` + keys + ` AND state = 'processing' AND worker_id = v.c_worker AND lease_token = v.c_token
		RETURNING ` + leasedColumns
	query := s.db.Rebind(`
		WITH v (c_id, c_worker, c_token, c_result, c_model, c_input, c_output, c_duration, c_now) AS (` + source + `)
		` + update)
	args = append(append(args, ops[0].tenant), keyArgs...)
	rows, err := s.stmts.Query(ctx, tx, query, args...)
	if err != nil {
		return err
	}
	completed, err := scanAll(rows, scanLeased)
	if err != nil {
		return err
	}
	byID := make(map[string]domain.Job, len(completed))
	for _, j := range completed {
		byID[j.ID] = j
	}
	events := make([]outbox.Event, 0, len(first))
	for _, op := range first {
		j, ok := byID[op.ref.JobID]
		if !ok {
			op.job, op.err = s.conflict(ctx, tx, op.tenant, op.ref.JobID)
			if !isOutcome(op.err) {
				return op.err
			}
			continue
		}
		op.job, op.err = j, nil
		ev, err := domain.CompletedEvent(j)
		if err != nil {
			return err
		}
		events = append(events, outbox.Event{
			Topic: ev.Topic, Key: ev.Key, TenantID: ev.TenantID, Payload: ev.Payload, CreatedAt: op.completion.Now,
		})
	}
	// One multi-row insert for the group's completion events.
	if _, err := outbox.AddMany(ctx, tx, s.db.Dialect, events); err != nil {
		return err
	}
	for _, op := range again {
		if err := s.completeMany(ctx, tx, []*groupOp{op}); err != nil {
			return err
		}
	}
	return nil
}

// conflict reads the job a conditional write did not match: with
// domain.ErrConflict it is the job as it is now.
func (s *Store) conflict(ctx context.Context, tx *sql.Tx, tenant, id string) (domain.Job, error) {
	j, err := s.get(ctx, tx, s.q.get, tenant, id)
	if err != nil {
		return domain.Job{}, err
	}
	return j, domain.ErrConflict
}

// Fail reads the leased job under a row lock (SQLite: inside the write
// transaction), lets decide pick the outcome, and writes it.
func (s *Store) Fail(ctx context.Context, ref domain.LeaseRef, decide func(domain.Job) domain.Retry) (domain.Job, error) {
	var j domain.Job
	err := s.db.InTenantTx(ctx, ref.TenantID, func(tx *sql.Tx) error {
		current, err := s.get(ctx, tx, s.q.getForUpdate, ref.TenantID, ref.JobID)
		if err != nil {
			return err
		}
		if !current.Leased(ref) {
			j = current
			return domain.ErrConflict
		}
		r := decide(current)
		status, runAt := domain.StatusFailed, r.RunAt
		if r.Dead {
			status, runAt = domain.StatusDead, current.RunAt
		}
		j, err = s.updateLeased(ctx, tx, ref, s.q.fail, string(status), runAt, r.Error, r.Now, r.Now)
		return err
	})
	return j, wrapLeased("fail", ref, err)
}

// wrapLeased wraps a lease operation's error, keeping the sentinels
// reachable with errors.Is.
func wrapLeased(op string, ref domain.LeaseRef, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s job %s: %w", op, ref.JobID, err)
}

// TenantsWithExpiredLeases reads across tenants, through jobs_leased: the
// range of leases that ended by now.
func (s *Store) TenantsWithExpiredLeases(ctx context.Context, now time.Time) ([]string, error) {
	tenants, err := s.tenants(ctx,
		"SELECT DISTINCT tenant_id FROM jobs WHERE state = 'processing' AND lease_expires_at <= ? ORDER BY tenant_id", now)
	if err != nil {
		return nil, fmt.Errorf("tenants with expired leases: %w", err)
	}
	return tenants, nil
}

func (s *Store) tenants(ctx context.Context, query string, args ...any) ([]string, error) {
	var tenants []string
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) (err error) {
		tenants, err = pstore.Strings(s.stmts.Query(ctx, tx, s.db.Rebind(query), args...))
		return err
	})
	return tenants, err
}

// Depth counts the unfinished jobs of all tenants through the partial
// indexes that hold them (jobs_runnable, jobs_leased), never touching
// finished rows.
func (s *Store) Depth(ctx context.Context) ([]domain.Depth, error) {
	var depth []domain.Depth
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmts.Query(ctx, tx, `
			SELECT state, prio, count(*) FROM jobs WHERE state IN ('queued', 'failed') GROUP BY state, prio
			UNION ALL
			SELECT state, prio, count(*) FROM jobs WHERE state = 'processing' GROUP BY state, prio`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d     domain.Depth
				state string
				prio  int64
			)
			if err := rows.Scan(&state, &prio, &d.N); err != nil {
				return err
			}
			d.Status, d.Priority = domain.Status(state), domain.Priority(prio)
			depth = append(depth, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	return depth, nil
}

// OldestQueued returns, by priority, the earliest run_at of all tenants'
// queued jobs (priorities with none are absent): the oldest due job's age
// is now minus it, and a time in the future means none is due yet.
// PostgreSQL answers with one aggregate; SQLite returns an aggregate of a
// timestamp as text, so it reads the first row by priority instead (its
// databases are single-node and small).
func (s *Store) OldestQueued(ctx context.Context) (map[domain.Priority]time.Time, error) {
	oldest := map[domain.Priority]time.Time{}
	err := s.db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect == pstore.Postgres {
			rows, err := s.stmts.Query(ctx, tx, `SELECT prio, min(run_at) FROM jobs WHERE state = 'queued' GROUP BY prio`)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var (
					prio int64
					at   time.Time
				)
				if err := rows.Scan(&prio, &at); err != nil {
					return err
				}
				oldest[domain.Priority(prio)] = at
			}
			return rows.Err()
		}
		for _, p := range domain.Priorities() {
			var at time.Time
			err := s.stmts.QueryRow(ctx, tx, s.db.Rebind(`SELECT run_at FROM jobs WHERE state = 'queued' AND prio = ? ORDER BY run_at LIMIT 1`), int64(p)).Scan(&at)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			default:
				oldest[p] = at
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("oldest queued job: %w", err)
	}
	return oldest, nil
}

// DeleteFinished deletes old finished jobs tenant by tenant: under
// row-level security a transaction may delete only the rows of the tenant
// it is scoped to, so the tenants are found by an all-tenants read first.
func (s *Store) DeleteFinished(ctx context.Context, before time.Time) (int64, error) {
	tenants, err := s.tenants(ctx, `
		SELECT DISTINCT tenant_id FROM jobs
		WHERE state IN ('completed', 'dead', 'cancelled') AND updated_at < ? ORDER BY tenant_id`, before)
	if err != nil {
		return 0, fmt.Errorf("delete finished jobs: list tenants: %w", err)
	}
	var deleted int64
	for _, tenant := range tenants {
		for {
			var n int64
			err := s.db.InTenantTx(ctx, tenant, func(tx *sql.Tx) error {
				ids, err := pstore.Strings(s.stmts.Query(ctx, tx, s.q.deleteFinished, tenant, tenant, before, deleteBatch))
				if err != nil {
					return err
				}
				n = int64(len(ids))
				return nil
			})
			if err != nil {
				return deleted, fmt.Errorf("delete finished jobs of %q: %w", tenant, err)
			}
			deleted += n
			if n < deleteBatch {
				break
			}
		}
	}
	return deleted, nil
}
