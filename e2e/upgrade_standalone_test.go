package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
)

// upgradeAuthMode is the auth mode of the upgrade check's stack; a
// standalone previous binary runs with the same.
const upgradeAuthMode = "optional"

// startPrevious runs p's previous binary bin standalone, beside the stack:
// plaintext gRPC on a free loopback port, the stack's HS256 secret and
// auth mode, the service's database as the app role (appURL: the schema
// the new binary migrated), and no peers. Its settings go through ECHOPILOT_*
// variables only: flags were renamed over time, the variables were not.
// It returns a connection to it; the process stops at the end of t.
func startPrevious(t *testing.T, s *suite, root string, p previousBinary, bin, appURL string) *grpc.ClientConn {
	t.Helper()
	addr := freeAddr(t)
	env := []string{
		"ECHOPILOT_GRPC_ADDR=" + addr,
		// Never the default (:92xx on every interface), which another
		// stack on this machine may hold.
		"ECHOPILOT_METRICS_ADDR=" + freeAddr(t),
		"ECHOPILOT_DATABASE_URL=" + appURL,
		"ECHOPILOT_AUTH_MODE=" + upgradeAuthMode,
		"ECHOPILOT_JWT_HS256_SECRET=" + string(s.secret),
		// Decision reports go to a closed loopback port (they are dropped),
		// not to the default 127.0.0.1:9101 where another stack may listen.
		"ECHOPILOT_TENANCY_ADDR=" + freeAddr(t),
	}
	// Set only when the commit knows them (later ones refuse an
	// issuer-less token in some modes without it).
	optional := []string{"ECHOPILOT_ALLOW_UNBOUND_TOKENS=true"}
	if p.service == "audit" {
		// The key the new binary created: checkpoints of both verify.
		env = append(env, "ECHOPILOT_AUDIT_SIGNING_KEY_FILE="+filepath.Join(s.dataDir, "audit-signing.key"))
	}
	// No ECHOPILOT_AUDIT_ADDR for tenancy: its outbox events wait.
	for _, kv := range env {
		if !commitKnows(t, root, p.commit, strings.SplitN(kv, "=", 2)[0]) {
			t.Fatalf("%.12s does not read %s: the standalone settings must be revised for it", p.commit, strings.SplitN(kv, "=", 2)[0])
		}
	}
	for _, kv := range optional {
		if commitKnows(t, root, p.commit, strings.SplitN(kv, "=", 2)[0]) {
			env = append(env, kv)
		}
	}
	name := p.service + "-prev"
	proc, err := devstack.Start(name, bin, env, devstack.PrefixWriter(s.out, new(sync.Mutex), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(20 * time.Second); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := devstack.WaitGRPC(ctx, addr, proc); err != nil {
		t.Fatalf("%s (%.12s) did not serve on the new schema: %v\n%s", name, p.commit, err, s.out.String())
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// commitKnows reports whether the sources of commit mention the
// environment variable name.
func commitKnows(t *testing.T, root, commit, name string) bool {
	t.Helper()
	_, err := gitOut(root, "grep", "-q", "-F", "-e", name, commit, "--", "platform", "services")
	return err == nil
}

// bearer is ctx carrying token, as the gateway passes it on.
func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, identity.MDAuthorization, "Bearer "+token)
}

// previousTenancy: tenants created by either binary read the same from the
// other (00002 added rate-limit columns with defaults the previous binary
// does not write), and a denial the previous binary records reaches the
// stats the new one serves.
func previousTenancy(t *testing.T, s *suite, conn *grpc.ClientConn) {
	old := tenancyv1.NewTenancyServiceClient(conn)
	admin := s.token(t, "default", "admin")
	code, body := s.call(t, "POST", "/api/tenants", admin, nil, `{"tenant_id":"upo-new","display_name":"Made by new","rate_limit_read_per_second":7}`)
	if code != http.StatusOK {
		t.Fatalf("new binary: create tenant = %d %v", code, body)
	}
	got, err := old.GetTenant(bearer(t.Context(), admin), &tenancyv1.GetTenantRequest{TenantId: "upo-new"})
	if err != nil || got.GetTenant().GetDisplayName() != "Made by new" || got.GetTenant().GetCreateTime() == nil {
		t.Fatalf("previous binary: tenant the new one created = %v, %v", got, err)
	}
	created, err := old.CreateTenant(bearer(t.Context(), admin), &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: "upo-old", DisplayName: "Made by old"}})
	if err != nil || created.GetExisted() {
		t.Fatalf("previous binary: create tenant = %v, %v", created, err)
	}
	code, body = s.call(t, "GET", "/api/tenants/upo-old", admin, nil, "")
	tn, _ := body["tenant"].(map[string]any)
	if code != http.StatusOK || tn["display_name"] != "Made by old" {
		t.Fatalf("new binary: tenant the previous one created = %d %v", code, body)
	}
	// The columns it did not write read as their default (0, maybe omitted).
	for _, f := range []string{"rate_limit_read_per_second", "rate_limit_read_burst", "rate_limit_write_per_second", "rate_limit_write_burst"} {
		if v, ok := tn[f]; ok && v != 0.0 {
			t.Errorf("new binary: %s of the previous binary's tenant = %v, want 0", f, v)
		}
	}

	user := s.token(t, "upo-t", "user")
	acc, err := old.TestAccess(bearer(t.Context(), user), &tenancyv1.TestAccessRequest{TargetTenantId: "globex"})
	if err != nil || acc.GetAllowed() || acc.GetTenantId() != "upo-t" {
		t.Fatalf("previous binary: cross-tenant TestAccess = %v, %v", acc, err)
	}
	info, err := old.GetTenantInfo(bearer(t.Context(), user), &tenancyv1.GetTenantInfoRequest{})
	if err != nil || info.GetTenantId() != "upo-t" || !info.GetTenantVerified() || info.GetStats().GetCrossTenantDenied() != 1 {
		t.Fatalf("previous binary: tenant info = %v, %v", info, err)
	}
	// The previous binary stores its decisions in batches; the new one
	// reads them from the database.
	waitFor(t, 20*time.Second, "the previous binary's denial in the new binary's stats", func() bool {
		_, body := s.call(t, "GET", "/api/tenant/info", user, nil, "")
		return dig(body, "stats", "cross_tenant_denied") == 1.0
	})
}

// Field numbers of severity (a string) in the previous audit messages: it
// became the Severity enum under new numbers (NewEntry 6 → 9, Entry 8 → 11).
// The check is of the database schema, so severity is written and read
// here under the numbers the previous binary knows.
const (
	oldNewEntrySeverity = 6
	oldEntrySeverity    = 8
)

// withOldSeverity is e with severity set as the previous binary reads it.
func withOldSeverity(e *auditv1.NewEntry, severity string) *auditv1.NewEntry {
	e.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, oldNewEntrySeverity, protowire.BytesType), severity))
	return e
}

// oldSeverity is the severity the previous binary sent in e ("" if none).
func oldSeverity(e *auditv1.Entry) string {
	b := e.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == oldEntrySeverity && typ == protowire.BytesType {
			v, m := protowire.ConsumeString(b)
			if m < 0 {
				return ""
			}
			return v
		}
		if m := protowire.ConsumeFieldValue(num, typ, b); m >= 0 {
			b = b[m:]
		} else {
			return ""
		}
	}
	return ""
}

// previousAudit: the previous binary reads the chain the new one wrote
// (00010 added retention state) and appends to it, and the new one reads
// those entries back in one chain that verifies.
func previousAudit(t *testing.T, s *suite, conn *grpc.ClientConn) {
	old := auditv1.NewAuditServiceClient(conn)
	const tenant, n, m = "upo-a", 3, 2
	user := s.token(t, tenant, "user")
	for i := range n {
		body := fmt.Sprintf(`{"entries":[{"event_type":"upgrade.new","user":"u@upo.test","action":"write","resource":"new-%d","severity":"high"}]}`, i)
		if code, out := s.call(t, "POST", "/api/audit/entries", user, nil, body); code != http.StatusOK {
			t.Fatalf("new binary: append %d = %d %v", i, code, out)
		}
	}
	_, fromNew := s.call(t, "GET", "/api/audit/chain?limit=100", user, nil, "")
	newEntries, _ := fromNew["entries"].([]any)
	if len(newEntries) != n {
		t.Fatalf("new binary: chain = %v", fromNew)
	}

	chain, err := old.GetChain(bearer(t.Context(), user), &auditv1.GetChainRequest{Limit: 100})
	if err != nil || chain.GetTotal() != n || len(chain.GetEntries()) != n || !chain.GetVerification().GetValid() {
		t.Fatalf("previous binary: chain the new one wrote = %v, %v", chain, err)
	}
	for i, e := range chain.GetEntries() {
		want := newEntries[i].(map[string]any)
		if e.GetSeq() != uint64(i+1) || e.GetHash() != want["hash"] || e.GetResource() != want["resource"] || oldSeverity(e) != "high" {
			t.Errorf("previous binary: entry %d = %v (severity %q), the new binary reads %v", i, e, oldSeverity(e), want)
		}
	}

	var add []*auditv1.NewEntry
	for i := range m {
		add = append(add, withOldSeverity(&auditv1.NewEntry{EventType: "upgrade.old", User: "u@upo.test", Action: "write", Resource: fmt.Sprintf("old-%d", i)}, "medium"))
	}
	appended, err := old.AppendEntries(bearer(t.Context(), user), &auditv1.AppendEntriesRequest{Entries: add})
	if err != nil || len(appended.GetEntries()) != m {
		t.Fatalf("previous binary: append = %v, %v", appended, err)
	}
	if first := appended.GetEntries()[0]; first.GetSeq() != n+1 || first.GetPrevHash() != newEntries[n-1].(map[string]any)["hash"] {
		t.Fatalf("previous binary: first appended entry = %v, does not follow the new binary's last", first)
	}

	// verify=full (for a tenant's admin): the new binary checks every hash,
	// the previous binary's entries (and checkpoints) among them.
	code, body := s.call(t, "GET", "/api/audit/chain?limit=100&verify=full", s.token(t, tenant, "admin"), nil, "")
	entries, _ := body["entries"].([]any)
	if code != http.StatusOK || body["total"] != float64(n+m) || len(entries) != n+m || dig(body, "verification", "valid") != true {
		t.Fatalf("new binary: chain after the previous binary appended = %d %v", code, body)
	}
	for i, a := range appended.GetEntries() {
		e := entries[n+i].(map[string]any)
		if e["seq"] != float64(a.GetSeq()) || e["hash"] != a.GetHash() || e["resource"] != a.GetResource() || e["severity"] != "medium" {
			t.Errorf("new binary: entry %d = %v, the previous binary appended %v", n+i, e, a)
		}
	}
	chain, err = old.GetChain(bearer(t.Context(), user), &auditv1.GetChainRequest{Limit: 100})
	if err != nil || chain.GetTotal() != n+m || !chain.GetVerification().GetValid() {
		t.Fatalf("previous binary: chain at the end = %v, %v", chain, err)
	}
}

// previousGrowth: referrals and events written by either binary count once
// in the stats both serve (00002 changed the event key: ids now belong to
// the tenant's or the link's space).
func previousGrowth(t *testing.T, s *suite, conn *grpc.ClientConn) {
	old := growthv1.NewGrowthServiceClient(conn)
	user := s.token(t, "upo-g", "user")
	ctx := bearer(t.Context(), user)
	code, body := s.call(t, "POST", "/api/growth/referral/create", user, nil, `{"referrer_id":"r-new","campaign":"upgrade"}`)
	if code != http.StatusOK {
		t.Fatalf("new binary: referral = %d %v", code, body)
	}
	newCode := body["referral_code"].(string)
	if code, body := s.call(t, "POST", "/api/growth/referral/events", user, nil,
		fmt.Sprintf(`{"referral_code":%q,"type":"signup","event_id":"n-s1","customer_id":"c-1"}`, newCode)); code != http.StatusOK {
		t.Fatalf("new binary: event = %d %v", code, body)
	}

	ref, err := old.CreateReferral(ctx, &growthv1.CreateReferralRequest{ReferrerId: "r-old", Campaign: "upgrade"})
	if err != nil || ref.GetReferralCode() == "" || !ref.GetCreated() {
		t.Fatalf("previous binary: referral = %v, %v", ref, err)
	}
	rec, err := old.RecordEvents(ctx, &growthv1.RecordEventsRequest{Events: []*growthv1.Event{
		{ReferralCode: newCode, Type: "signup", EventId: "o-s1", CustomerId: "c-2"},
		{ReferralCode: ref.GetReferralCode(), Type: "signup", EventId: "o-s2", CustomerId: "c-3"},
		{ReferralCode: ref.GetReferralCode(), Type: "conversion", EventId: "o-c1", CustomerId: "c-3", Revenue: 50},
		// The new binary's event, sent again: a duplicate.
		{ReferralCode: newCode, Type: "signup", EventId: "n-s1", CustomerId: "c-1"},
	}})
	if err != nil || len(rec.GetResults()) != 4 {
		t.Fatalf("previous binary: events = %v, %v", rec, err)
	}
	if r := rec.GetResults(); r[0].GetDuplicate() || r[1].GetDuplicate() || r[2].GetDuplicate() || !r[3].GetDuplicate() {
		t.Errorf("previous binary: duplicates = %v, want only the new binary's n-s1", r)
	}
	// The previous binary's event, sent again to the new one: a duplicate.
	code, body = s.call(t, "POST", "/api/growth/referral/events", user, nil,
		fmt.Sprintf(`{"referral_code":%q,"type":"signup","event_id":"o-s1","customer_id":"c-2"}`, newCode))
	if code != http.StatusOK || body["duplicate"] != true {
		t.Errorf("new binary: replay of the previous binary's event = %d %v", code, body)
	}

	stats, err := old.ListReferrals(ctx, &growthv1.ListReferralsRequest{Days: 7})
	if err != nil || stats.GetTotalReferrals() != 2 || stats.GetTotalSignups() != 3 || stats.GetTotalConversions() != 1 || stats.GetTotalRevenue() != 50 {
		t.Errorf("previous binary: referrals = %v, %v", stats, err)
	}
	_, body = s.call(t, "GET", "/api/growth/referrals?days=7", user, nil, "")
	if body["total_referrals"] != 2.0 || body["total_signups"] != 3.0 || body["total_conversions"] != 1.0 || body["total_revenue"] != 50.0 {
		t.Errorf("new binary: referrals = %v", body)
	}
}

// migrationKey names a service's migration by version.
type migrationKey struct {
	service string
	version int64
}

// knownBreaking lists migrations that shipped before this check and break
// the binary before them; a rolling upgrade across one needs the old
// replicas stopped first (docs/operations.md §6). The check pins each
// break, so a list entry cannot outlive it, and it stops applying once the
// service's next migration makes a newer binary the "previous" one.
var knownBreaking = map[migrationKey]string{
	{"growth", 2}: "00002_click_ids keys events by (tenant_id, source, event_id) and drops source's default: " +
		"the previous binary's ON CONFLICT (tenant_id, event_id) matches no constraint",
}

// previousBreaks checks that the previous binary of svc fails as its
// knownBreaking entry says.
func previousBreaks(t *testing.T, s *suite, conn *grpc.ClientConn, svc, why string) {
	if svc != "growth" {
		t.Fatalf("no pinned failure for %s (%s): add one", svc, why)
	}
	old := growthv1.NewGrowthServiceClient(conn)
	ctx := bearer(t.Context(), s.token(t, "upo-gb", "user"))
	ref, err := old.CreateReferral(ctx, &growthv1.CreateReferralRequest{ReferrerId: "r-old", Campaign: "upgrade"})
	if err != nil {
		t.Fatalf("previous binary: referral = %v (the break is in events, not referrals)", err)
	}
	_, err = old.RecordEvents(ctx, &growthv1.RecordEventsRequest{Events: []*growthv1.Event{
		{ReferralCode: ref.GetReferralCode(), Type: "signup", EventId: "o-s1", CustomerId: "c-1"},
	}})
	if status.Code(err) != codes.Internal {
		t.Fatalf("previous growth binary recorded events on the new schema (%v): the known break (%s) is gone; "+
			"remove it from knownBreaking", err, why)
	}
	t.Logf("known break, pinned: %s", why)
}
