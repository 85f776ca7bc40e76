package app_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/app"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

var (
	as      = servicetest.As
	wantErr = servicetest.WantErr
)

// stack is the service under test and an owner connection to its database,
// which the tamper tests edit behind the service's back.
type stack struct {
	c     auditv1.AuditServiceClient
	owner *store.DB
	// opt started the service: another on the same database starts from it.
	opt servicetest.Options
}

// backends runs fn on SQLite and, when configured, on PostgreSQL as a
// non-owner role, with auth required; args are extra flags.
func backends(t *testing.T, fn func(t *testing.T, s stack), args ...string) {
	t.Run("sqlite", func(t *testing.T) {
		url := "sqlite://" + filepath.Join(t.TempDir(), "audit.db")
		fn(t, start(t, servicetest.Options{DatabaseURL: url, Args: args}, url))
	})
	t.Run("postgres", func(t *testing.T) {
		migrateURL, appURL := storetest.Postgres(t)
		fn(t, start(t, servicetest.Options{DatabaseURL: appURL, MigrateURL: migrateURL, Args: args}, migrateURL))
	})
}

func start(t *testing.T, opt servicetest.Options, ownerURL string) stack {
	t.Helper()
	opt.AuthMode = "required"
	// No scrubber unless a test asks for one (a later flag wins): its pass
	// at start would race with what the test appends and reads.
	opt.Args = append([]string{"--scrub-interval=0"}, opt.Args...)
	opt.Args = append(opt.Args, "--signing-key-file="+filepath.Join(t.TempDir(), "signing.key"))
	conn := servicetest.Start(t, app.Spec(), opt)
	return stack{c: auditv1.NewAuditServiceClient(conn), owner: storetest.Open(t, ownerURL), opt: opt}
}

func appendN(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, n int, severity auditv1.Severity) []*auditv1.Entry {
	t.Helper()
	var out []*auditv1.Entry
	for i := range n {
		details, _ := structpb.NewStruct(map[string]any{"n": i, "ip": "127.0.0.1"})
		res, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
			EventType: "user.login", User: fmt.Sprintf("user%d@acme.test", i), Action: "login",
			Resource: "console", Details: details, Severity: severity,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.GetEntries()...)
	}
	return out
}

func chain(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context) *auditv1.GetChainResponse {
	t.Helper()
	res, err := c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The seed's gate: three events appended come back chained, verified.
func TestSeedGate(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		appended := appendN(t, s.c, acme, 3, auditv1.Severity_SEVERITY_HIGH)
		res := chain(t, s.c, acme)
		if res.GetTotal() != 3 || len(res.GetEntries()) != 3 || !res.GetVerification().GetValid() ||
			res.GetVerification().GetEntries() != 3 {
			t.Fatalf("chain = %v", res)
		}
		e := res.GetEntries()
		if e[0].GetPrevHash() != "genesis" || e[1].GetPrevHash() != e[0].GetHash() || e[2].GetPrevHash() != e[1].GetHash() ||
			len(e[0].GetHash()) != 64 || e[2].GetHash() != appended[2].GetHash() || e[1].GetSeq() != 2 ||
			e[0].GetDetails().GetFields()["ip"].GetStringValue() != "127.0.0.1" {
			t.Fatalf("entries are not chained: %v", e)
		}
		// Another tenant's log is its own and empty.
		if other := chain(t, s.c, as(t, "globex", "user")); other.GetTotal() != 0 || !other.GetVerification().GetValid() {
			t.Fatalf("globex sees %v", other)
		}
		_, err := s.c.GetChain(metadata.AppendToOutgoingContext(acme, "x-tenant-id", "globex"), &auditv1.GetChainRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = s.c.AppendEntries(acme, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{EventType: "x", TenantId: "globex"}}})
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = s.c.AppendEntries(acme, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{EventType: "x", Severity: auditv1.Severity(99)}}})
		wantErr(t, err, codes.InvalidArgument, "ENTRY_INVALID")
		// Paging: the seed's offset, and page tokens.
		page, err := s.c.GetChain(acme, &auditv1.GetChainRequest{Limit: 2, Offset: 1})
		if err != nil || len(page.GetEntries()) != 2 || page.GetEntries()[0].GetSeq() != 2 || page.GetTotal() != 3 {
			t.Fatalf("offset page = %v, %v", page, err)
		}
		page, err = s.c.GetChain(acme, &auditv1.GetChainRequest{Limit: 2})
		if err != nil || page.GetNextPageToken() == "" {
			t.Fatalf("first page = %v, %v", page, err)
		}
		page, err = s.c.GetChain(acme, &auditv1.GetChainRequest{Limit: 2, PageToken: page.GetNextPageToken()})
		if err != nil || len(page.GetEntries()) != 1 || page.GetEntries()[0].GetSeq() != 3 {
			t.Fatalf("second page = %v, %v", page, err)
		}
		// A page that ends the log gives no token to an empty one.
		page, err = s.c.GetChain(acme, &auditv1.GetChainRequest{Limit: 3})
		if err != nil || len(page.GetEntries()) != 3 || page.GetNextPageToken() != "" {
			t.Fatalf("the whole log in one page = %v, %v", page, err)
		}
	})
}

// The tamper suite: each change made directly in the database is detected
// and the first bad entry named.
func TestTamperDetected(t *testing.T) {
	cases := []struct {
		name   string
		tamper []string // statements run as the owner; %s is the tenant
		seq    uint64   // the entry the verification must name
	}{
		{"edit a field", []string{"UPDATE audit_entries SET user_name = 'mallory' WHERE tenant_id = '%s' AND seq = 5"}, 5},
		{"delete a middle row", []string{"DELETE FROM audit_entries WHERE tenant_id = '%s' AND seq = 4"}, 4},
		{"swap two rows", []string{
			"UPDATE audit_entries SET seq = 1000 WHERE tenant_id = '%s' AND seq = 3",
			"UPDATE audit_entries SET seq = 3 WHERE tenant_id = '%s' AND seq = 4",
			"UPDATE audit_entries SET seq = 4 WHERE tenant_id = '%s' AND seq = 1000",
		}, 3},
		{"truncate the tail", []string{"DELETE FROM audit_entries WHERE tenant_id = '%s' AND seq > 6"}, 7},
		{"details no longer JSON", []string{"UPDATE audit_entries SET details = 'garbage' WHERE tenant_id = '%s' AND seq = 2"}, 2},
		{"timestamp moved", []string{"UPDATE audit_entries SET ts = (SELECT ts FROM audit_entries WHERE tenant_id = '%[1]s' AND seq = 1) WHERE tenant_id = '%[1]s' AND seq = 8"}, 8},
	}
	backends(t, func(t *testing.T, s stack) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tenant := fmt.Sprintf("tamper-%d", i)
				ctx := as(t, tenant, "user")
				appendN(t, s.c, ctx, 8, auditv1.Severity_SEVERITY_LOW)
				if v := chain(t, s.c, ctx).GetVerification(); !v.GetValid() {
					t.Fatalf("before tampering: %v", v)
				}
				for _, q := range c.tamper {
					q = strings.ReplaceAll(fmt.Sprintf(q, tenant), "%!(EXTRA string="+tenant+")", "")
					if _, err := s.owner.ExecContext(t.Context(), q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				v := chain(t, s.c, ctx).GetVerification()
				if v.GetValid() || v.GetFirstInvalidSeq() != c.seq || v.GetReason() == "" {
					t.Fatalf("after tampering: %v, want invalid at %d", v, c.seq)
				}
			})
		}
		// Rewrite a suffix and re-hash it, links and all: the chain is
		// consistent again, but not with the signed checkpoints.
		t.Run("rewrite and re-hash a suffix", func(t *testing.T) {
			tenant := "tamper-rewrite"
			ctx := as(t, tenant, "user")
			appendN(t, s.c, ctx, 8, auditv1.Severity_SEVERITY_LOW)
			forged := forgeSuffix(t, s, ctx, tenant, 5)
			if forged == 0 {
				t.Fatal("nothing forged")
			}
			v := chain(t, s.c, ctx).GetVerification()
			if v.GetValid() || v.GetFirstInvalidSeq() != 5 {
				t.Fatalf("after a re-hashed rewrite: %v, want invalid at 5", v)
			}
		})
	})
}

// The head keeps the tree's compact range so appends need not read the
// nodes. A head without it (written before it was kept) is filled from
// the nodes; a forged one makes the next checkpoint disagree with the
// entries, which the verification names.
func TestHeadRange(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		t.Run("missing", func(t *testing.T) {
			ctx := as(t, "upgraded", "user")
			appendN(t, s.c, ctx, 5, auditv1.Severity_SEVERITY_LOW)
			if _, err := s.owner.ExecContext(t.Context(), "UPDATE audit_heads SET tree_range = NULL WHERE tenant_id = 'upgraded'"); err != nil {
				t.Fatal(err)
			}
			appendN(t, s.c, ctx, 6, auditv1.Severity_SEVERITY_LOW)
			if v := chain(t, s.c, ctx).GetVerification(); !v.GetValid() || v.GetEntries() != 11 {
				t.Fatalf("after appending to a head without its range: %v", v)
			}
		})
		t.Run("forged", func(t *testing.T) {
			ctx := as(t, "forged", "user")
			appendN(t, s.c, ctx, 5, auditv1.Severity_SEVERITY_LOW)
			// Size 5 has two range nodes; swap them.
			q := "UPDATE audit_heads SET tree_range = substr(tree_range, 33, 32) || substr(tree_range, 1, 32) WHERE tenant_id = 'forged'"
			if _, err := s.owner.ExecContext(t.Context(), q); err != nil {
				t.Fatal(err)
			}
			appendN(t, s.c, ctx, 1, auditv1.Severity_SEVERITY_LOW)
			if v := chain(t, s.c, ctx).GetVerification(); v.GetValid() || v.GetFirstInvalidSeq() != 6 {
				t.Fatalf("after appending to a forged range: %v, want invalid at 6", v)
			}
		})
	})
}

// A database restored from an older copy is self-consistent; a verifier
// that kept a later checkpoint detects it, naming the first lost entry.
func TestRollbackAgainstLaterCheckpoint(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		appendN(t, s.c, ctx, 5, auditv1.Severity_SEVERITY_LOW)
		held, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil || held.GetTreeSize() != 5 {
			t.Fatalf("checkpoint = %v, %v", held, err)
		}
		// What restoring the copy taken at 3 entries leaves behind.
		for _, q := range []string{
			"DELETE FROM audit_entries WHERE tenant_id = 'acme' AND seq > 3",
			"DELETE FROM audit_checkpoints WHERE tenant_id = 'acme' AND size > 3",
			"DELETE FROM audit_nodes WHERE tenant_id = 'acme' AND (idx + 1) * (1 << level) > 3",
			"UPDATE audit_heads SET size = 3, last_hash = (SELECT hash FROM audit_entries WHERE tenant_id = 'acme' AND seq = 3) WHERE tenant_id = 'acme'",
		} {
			if _, err := s.owner.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if v := chain(t, s.c, ctx).GetVerification(); !v.GetValid() || v.GetEntries() != 3 {
			t.Fatalf("the rolled-back log alone looks fine, as it should: %v", v)
		}
		res, err := s.c.GetChain(ctx, &auditv1.GetChainRequest{Checkpoint: held.GetCheckpoint()})
		if err != nil {
			t.Fatal(err)
		}
		if v := res.GetVerification(); v.GetValid() || v.GetFirstInvalidSeq() != 4 {
			t.Fatalf("against the later checkpoint: %v, want invalid at 4", v)
		}
		_, err = s.c.GetChain(ctx, &auditv1.GetChainRequest{Checkpoint: "not a checkpoint"})
		wantErr(t, err, codes.InvalidArgument, "CHECKPOINT_INVALID")
	})
}

// forgeSuffix rewrites entries from seq on with a new user and recomputes
// every hash and link from there, as an attacker with database access
// would; it returns how many entries it rewrote.
func forgeSuffix(t *testing.T, s stack, ctx context.Context, tenant string, from uint64) int {
	t.Helper()
	res := chain(t, s.c, ctx)
	prev := ""
	n := 0
	for _, e := range res.GetEntries() {
		if e.GetSeq() < from {
			prev = e.GetHash()
			continue
		}
		e.User = "mallory"
		e.PrevHash = prev
		h := rehash(tenant, e)
		q := s.owner.Rebind("UPDATE audit_entries SET user_name = ?, prev_hash = ?, hash = ? WHERE tenant_id = ? AND seq = ?")
		if _, err := s.owner.ExecContext(t.Context(), q, e.GetUser(), prev, h, tenant, int64(e.GetSeq())); err != nil {
			t.Fatal(err)
		}
		prev = h
		n++
	}
	return n
}

// Many appenders on one tenant extend one chain: no gap, no fork.
func TestConcurrentAppenders(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		const appenders, each = 32, 5
		var wg sync.WaitGroup
		errs := make(chan error, appenders+1)
		for a := range appenders {
			wg.Go(func() {
				for i := range each {
					_, err := s.c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{
						{EventType: "race", User: fmt.Sprintf("a%d", a), Action: fmt.Sprint(i)},
						{EventType: "race", User: fmt.Sprintf("a%d", a), Action: fmt.Sprint(i) + "b"},
					}})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		// Verifications while the appenders run see one snapshot: entries
		// and their checkpoints together, never a log that looks tampered.
		done := make(chan struct{})
		var reads sync.WaitGroup
		reads.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				res, err := s.c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 1})
				if err != nil {
					errs <- err
					return
				}
				if v := res.GetVerification(); !v.GetValid() {
					errs <- fmt.Errorf("verification during appends: %v", v)
					return
				}
			}
		})
		wg.Wait()
		close(done)
		reads.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		res := chain(t, s.c, ctx)
		if res.GetTotal() != appenders*each*2 || !res.GetVerification().GetValid() {
			t.Fatalf("after %d concurrent appenders: total %d, %v", appenders, res.GetTotal(), res.GetVerification())
		}
		for i, e := range res.GetEntries() {
			if e.GetSeq() != uint64(i+1) {
				t.Fatalf("entry %d has seq %d", i, e.GetSeq())
			}
		}
	})
}

// Proofs the service serves check out with an independent implementation
// of RFC 6962 (golang.org/x/mod/sumdb/tlog), against the signed checkpoint.
func TestProofsVerifyIndependently(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		entries := appendN(t, s.c, ctx, 21, auditv1.Severity_SEVERITY_LOW)
		cp, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil || cp.GetTreeSize() != 21 {
			t.Fatalf("checkpoint = %v, %v", cp, err)
		}
		v, err := note.NewVerifier(cp.GetVerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open([]byte(cp.GetCheckpoint()), note.VerifierList(v))
		if err != nil {
			t.Fatalf("checkpoint signature: %v", err)
		}
		lines := strings.Split(n.Text, "\n")
		if lines[0] != "echopilot.audit/acme" && !strings.HasSuffix(lines[0], "acme") || lines[1] != "21" {
			t.Fatalf("checkpoint body %q", n.Text)
		}
		root := hashOf(t, cp.GetRootHash())
		for _, seq := range []uint64{1, 2, 7, 16, 21} {
			p, err := s.c.GetInclusionProof(ctx, &auditv1.GetInclusionProofRequest{Seq: seq})
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := hex.DecodeString(entries[seq-1].GetHash())
			if err := tlog.CheckRecord(proofOf(t, p.GetHashes()), 21, root, int64(seq-1), tlog.RecordHash(leaf)); err != nil {
				t.Errorf("inclusion of %d: %v", seq, err)
			}
		}
		for _, from := range []uint64{1, 5, 8, 20} {
			p, err := s.c.GetConsistencyProof(ctx, &auditv1.GetConsistencyProofRequest{FromSize: from})
			if err != nil {
				t.Fatal(err)
			}
			old := tlog.Hash{}
			// The root at size from, recomputed from the entries alone.
			var hashes []tlog.Hash
			for _, e := range entries[:from] {
				leaf, _ := hex.DecodeString(e.GetHash())
				hashes = append(hashes, tlog.RecordHash(leaf))
			}
			old = rootOf(hashes)
			if err := tlog.CheckTree(tlog.TreeProof(proofOf(t, p.GetHashes())), 21, root, int64(from), old); err != nil {
				t.Errorf("consistency %d → 21: %v", from, err)
			}
		}
		_, err = s.c.GetInclusionProof(ctx, &auditv1.GetInclusionProofRequest{Seq: 22})
		wantErr(t, err, codes.InvalidArgument, "PROOF_OUT_OF_RANGE")
	})
}

func hashOf(t *testing.T, h string) tlog.Hash {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != tlog.HashSize {
		t.Fatalf("hash %q", h)
	}
	return tlog.Hash(b)
}

func proofOf(t *testing.T, hs []string) tlog.RecordProof {
	out := make(tlog.RecordProof, len(hs))
	for i, h := range hs {
		out[i] = hashOf(t, h)
	}
	return out
}

// rootOf is the RFC 6962 root of leaf hashes, computed by tlog.
func rootOf(leaves []tlog.Hash) tlog.Hash {
	var stored []tlog.Hash
	for i, l := range leaves {
		hs, _ := tlog.StoredHashesForRecordHash(int64(i), l, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, x := range idx {
				out[j] = stored[x]
			}
			return out, nil
		}))
		stored = append(stored, hs...)
	}
	h, _ := tlog.TreeHash(int64(len(leaves)), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = stored[x]
		}
		return out, nil
	}))
	return h
}

// rehash computes e's hash as the service does (ledger.ComputeHash), from
// the entry as served.
func rehash(tenant string, e *auditv1.Entry) string {
	raw, _ := protojson.Marshal(e.GetDetails())
	details, _ := ledger.CanonicalDetails(raw)
	return ledger.ComputeHash(ledger.Entry{
		TenantID: tenant, Seq: e.GetSeq(), TS: e.GetTs().AsTime(), EventType: e.GetEventType(), User: e.GetUser(),
		Action: e.GetAction(), Resource: e.GetResource(), Details: details, Severity: ledgerSeverity(e.GetSeverity()), PrevHash: e.GetPrevHash(),
	})
}

// ledgerSeverity is the ledger's name of s: the lower-case suffix of its
// proto name, as the REST API spells it.
func ledgerSeverity(s auditv1.Severity) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
}

// Appends with an idempotency key happen once per tenant: a producer's
// redelivery is left out, another tenant's equal key is its own.
func TestIdempotentAppend(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		svc := servicetest.AsService(t, "tenancy", "")
		req := &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{
			{TenantId: "acme", EventType: "access.denied", IdempotencyKey: "evt-1"},
			{TenantId: "globex", EventType: "access.denied", IdempotencyKey: "evt-1"},
			{TenantId: "acme", EventType: "note"},
		}}
		res, err := s.c.AppendEntries(svc, req)
		if err != nil || len(res.GetEntries()) != 3 || res.GetDuplicates() != 0 {
			t.Fatalf("first = %v, %v", res, err)
		}
		res, err = s.c.AppendEntries(svc, req)
		if err != nil || len(res.GetEntries()) != 1 || res.GetDuplicates() != 2 || res.GetEntries()[0].GetEventType() != "note" {
			t.Fatalf("redelivery = %v, %v", res, err)
		}
		if c := chain(t, s.c, as(t, "acme", "user")); c.GetTotal() != 3 || !c.GetVerification().GetValid() {
			t.Fatalf("acme's log: %d entries, %v", c.GetTotal(), c.GetVerification())
		}
		if c := chain(t, s.c, as(t, "globex", "user")); c.GetTotal() != 1 {
			t.Fatalf("globex's log: %d entries", c.GetTotal())
		}
	})
}

// Two replicas of the service on one PostgreSQL database, appending to one
// tenant at once, still extend one chain: the head row lock serializes
// them.
func TestAppendersOnTwoReplicas(t *testing.T) {
	migrateURL, appURL := storetest.Postgres(t)
	key := "--signing-key-file=" + filepath.Join(t.TempDir(), "signing.key")
	var clients []auditv1.AuditServiceClient
	for range 2 {
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{AuthMode: "required", DatabaseURL: appURL,
			MigrateURL: migrateURL, Args: []string{key}})
		clients = append(clients, auditv1.NewAuditServiceClient(conn))
	}
	ctx := as(t, "acme", "user")
	const perReplica, each = 16, 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*perReplica)
	for _, c := range clients {
		for range perReplica {
			wg.Go(func() {
				for range each {
					if _, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{EventType: "replica"}}}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range clients {
		res := chain(t, c, ctx)
		if res.GetTotal() != 2*perReplica*each || !res.GetVerification().GetValid() {
			t.Fatalf("after two replicas: total %d, %v", res.GetTotal(), res.GetVerification())
		}
	}
}

// `audit keygen` prints a key the service starts with and the verifier key
// its checkpoints verify under.
func TestKeygen(t *testing.T) {
	var out strings.Builder
	if err := app.Keygen(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	skey, ok := strings.CutPrefix(lines[0], "ECHOPILOT_AUDIT_SIGNING_KEY=")
	vkey, ok2 := strings.CutPrefix(lines[len(lines)-1], "# verifier key (public): ")
	if !ok || !ok2 {
		t.Fatalf("keygen printed %q", out.String())
	}
	url := "sqlite://" + filepath.Join(t.TempDir(), "audit.db")
	conn := servicetest.Start(t, app.Spec(), servicetest.Options{DatabaseURL: url, AuthMode: "required", Args: []string{"--signing-key=" + skey}})
	c := auditv1.NewAuditServiceClient(conn)
	ctx := as(t, "acme", "user")
	appendN(t, c, ctx, 1, auditv1.Severity_SEVERITY_LOW)
	cp, err := c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
	if err != nil || cp.GetVerifierKey() != vkey {
		t.Fatalf("checkpoint %v, %v; want verifier key %s", cp, err, vkey)
	}
}

// A signing key change: with the old verifier key among the previous ones,
// the checkpoints it signed still verify beside the new key's; without it
// they do not, and the verification says so.
func TestSigningKeyRotation(t *testing.T) {
	oldKey, oldVerifier := newKey(t)
	newSigning, _ := newKey(t)
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		appendN(t, s.c, ctx, 3, auditv1.Severity_SEVERITY_LOW) // signed by the stack's own key
		cp, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		start := func(args ...string) auditv1.AuditServiceClient {
			opt := s.opt
			// No scrubber: a pass at start by a replica that does not
			// trust every key yet would record a sticky failure.
			opt.Args = append(args, "--scrub-interval=0")
			return auditv1.NewAuditServiceClient(servicetest.Start(t, app.Spec(), opt))
		}
		before := start("--signing-key=" + oldKey)
		appendN(t, before, ctx, 2, auditv1.Severity_SEVERITY_LOW)
		rotated := start("--signing-key="+newSigning, "--previous-verifier-keys="+oldVerifier+","+cp.GetVerifierKey())
		appendN(t, rotated, ctx, 2, auditv1.Severity_SEVERITY_LOW)
		if v := chain(t, rotated, ctx).GetVerification(); !v.GetValid() || v.GetEntries() != 7 {
			t.Fatalf("after the key change, with the previous keys: %v", v)
		}
		forgetful := start("--signing-key=" + newSigning)
		if v := chain(t, forgetful, ctx).GetVerification(); v.GetValid() || v.GetFirstInvalidSeq() == 0 {
			t.Fatalf("without the previous keys the old checkpoints must not verify: %v", v)
		}
	})
}

func newKey(t *testing.T) (skey, vkey string) {
	t.Helper()
	var out strings.Builder
	if err := app.Keygen(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	skey, _ = strings.CutPrefix(lines[0], "ECHOPILOT_AUDIT_SIGNING_KEY=")
	vkey, _ = strings.CutPrefix(lines[len(lines)-1], "# verifier key (public): ")
	return skey, vkey
}
