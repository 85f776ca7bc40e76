package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func charge(id, key, tenant string, gross, refunded int64, at time.Time) domain.PaymentEvent {
	return domain.PaymentEvent{EventID: id, Type: "charge.succeeded", TenantID: tenant, PaymentKey: key,
		Currency: "usd", GrossCents: gross, RefundedCents: refunded, At: at}
}

// export is a `stripe charges list` output.
const export = `{"object":"list","url":"/v1/charges","has_more":false,"data":[
 {"id":"ch_ok","object":"charge","amount":1000,"amount_refunded":0,"currency":"usd","created":%d,"customer":"cus_1","status":"succeeded"},
 {"id":"ch_amount","object":"charge","amount":2500,"amount_refunded":0,"currency":"usd","created":%d,"customer":"cus_1","status":"succeeded"},
 {"id":"ch_refund","object":"charge","amount":700,"amount_refunded":700,"currency":"usd","created":%d,"customer":"cus_2","status":"succeeded"},
 {"id":"ch_lost","object":"charge","amount":900,"amount_refunded":0,"currency":"usd","created":%d,"customer":"cus_3","status":"succeeded"},
 {"id":"ch_failed","object":"charge","amount":900,"currency":"usd","created":%d,"status":"failed"},
 {"id":"ch_eur","object":"charge","amount":900,"currency":"eur","created":%d,"status":"succeeded"},
 {"id":"ch_old","object":"charge","amount":900,"currency":"usd","created":%d,"status":"succeeded"}
]}`

func TestReconcile(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			migrateURL, appURL := b.NewDB(t)
			if err := storetest.Open(t, migrateURL).Migrate(t.Context(), store.Migrations); err != nil {
				t.Fatal(err)
			}
			st := store.New(storetest.Open(t, appURL))
			for _, ev := range []domain.PaymentEvent{
				charge("e1", "ch_ok", "acme", 1000, 0, t0),
				charge("e2", "ch_amount", "acme", 2000, 0, t0),
				charge("e3", "ch_refund", "globex", 700, 0, t0), // the refund never arrived
				charge("e4", "ch_forged", "globex", 300, 0, t0),
				charge("e5", "in_1", "globex", 300, 0, t0),
				charge("e6", "ch_later", "globex", 300, 0, t0.AddDate(0, 1, 0)), // outside the period
			} {
				if _, err := st.ApplyPaymentEvent(t.Context(), ev); err != nil {
					t.Fatal(err)
				}
			}
			c := t0.Unix()
			file := filepath.Join(t.TempDir(), "charges.json")
			content := []byte(fmt.Sprintf(export, c, c, c, c, c, c, t0.AddDate(0, -2, 0).Unix()))
			if err := os.WriteFile(file, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"--database-url", appURL, "--from", "2026-03-01", "--to", "2026-03-31", "--json", file}, nil, &out, &errOut)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, errOut.String())
			}
			var rep Report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			ids := func(ms []Missing) (s []string) {
				for _, m := range ms {
					s = append(s, m.ID)
				}
				return s
			}
			if rep.Matched != 1 || rep.InvoicePayments != 1 || rep.Skipped != 3 ||
				strings.Join(ids(rep.MissingInFinops), ",") != "ch_lost" ||
				strings.Join(ids(rep.MissingInStripe), ",") != "ch_forged" ||
				len(rep.Mismatched) != 2 || rep.Mismatched[0].ID != "ch_amount" || rep.Mismatched[1].ID != "ch_refund" ||
				rep.Mismatched[1].FinopsRefunded != 0 || rep.Mismatched[1].StripeAmountRefunded != 700 {
				t.Fatalf("report %+v", rep)
			}

			// The text form, and agreement over a period with nothing.
			out.Reset()
			if code := run(context.Background(), []string{"--database-url", appURL, "--from", "2025-01-01", "--to", "2025-01-31", file}, nil, &out, &errOut); code != 0 {
				t.Fatalf("empty period: exit %d: %s", code, out.String())
			}
			if !strings.HasPrefix(out.String(), "period 2025-01-01 to 2025-01-31: 0 matched") {
				t.Fatalf("text %q", out.String())
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		args  []string
		input string
	}{
		"no period":   {[]string{"--database-url", "sqlite://x", "-"}, `{"object":"list","data":[]}`},
		"reversed":    {[]string{"--database-url", "sqlite://x", "--from", "2026-03-02", "--to", "2026-03-01", "-"}, `{"object":"list","data":[]}`},
		"not a list":  {[]string{"--database-url", "sqlite://x", "--from", "2026-03-01", "--to", "2026-03-01", "-"}, `{"object":"charge"}`},
		"not charges": {[]string{"--database-url", "sqlite://x", "--from", "2026-03-01", "--to", "2026-03-01", "-"}, `{"object":"list","data":[{"id":"cus_1"}]}`},
		"duplicate":   {[]string{"--database-url", "sqlite://x", "--from", "2026-03-01", "--to", "2026-03-01", "-"}, `{"object":"list","data":[{"id":"ch_1"},{"id":"ch_1"}]}`},
		"no file":     {[]string{"--database-url", "sqlite://x", "--from", "2026-03-01", "--to", "2026-03-01", filepath.Join(dir, "none")}, ""},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tc.args, strings.NewReader(tc.input), &out, &errOut); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errOut.String())
		}
	}
}
