package domain_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/code"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// now is the tests' clock: every service here runs at it.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// newService runs the domain on a fresh database of backend b, with a fixed
// clock and codes drawn from a fixed seed, so that two services given the
// same calls make the same codes.
func newService(t *testing.T, b storetest.Backend) *domain.Service {
	t.Helper()
	codes := rand.NewChaCha8([32]byte{7})
	return serviceOn(t, b.Open(t, storeMigrations), func() (string, error) { return code.NewFrom(codes) })
}

var storeMigrations = store.Migrations

func serviceOn(t *testing.T, db *pstore.DB, newCode func() (string, error)) *domain.Service {
	t.Helper()
	clicks := 0
	svc, err := domain.NewService(store.New(db), domain.Config{
		DefaultRateBPS:    2000,
		DefaultLandingURL: "https://example.com/",
		AttributionWindow: 720 * time.Hour,
		Now:               func() time.Time { return now },
		NewCode:           newCode,
		ClickDedupWindow:  30 * time.Minute,
		VisitorKey:        []byte("0123456789abcdef0123456789abcdef"),
		MaxCampaigns:      1000,
		NewClickID:        func() string { clicks++; return fmt.Sprintf("click-%d", clicks) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// statsJSON lists every page of the leaderboard of q, a page of size 3 at a
// time, as JSON.
func statsJSON(t *testing.T, svc *domain.Service, tenant string, q domain.StatsQuery) []byte {
	t.Helper()
	q.PageSize = 3
	var pages []domain.Stats
	for {
		st, err := svc.Stats(t.Context(), domain.Caller{Tenant: tenant}, q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, st)
		if st.Next == "" {
			break
		}
		q.PageToken = st.Next
	}
	b, err := json.Marshal(pages)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exportCSV(t *testing.T, svc *domain.Service, tenant string, days int32, minPayout float64) []byte {
	t.Helper()
	exp, err := svc.PayoutExport(domain.Caller{Tenant: tenant}, domain.PayoutQuery{Days: days, MinPayout: minPayout, State: domain.StateAll})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := exp.WriteCSV(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func create(t *testing.T, svc *domain.Service, tenant, referrer, campaign string) string {
	t.Helper()
	r, err := svc.CreateReferral(t.Context(), domain.Caller{Tenant: tenant}, domain.NewReferral{ReferrerID: referrer, Campaign: campaign})
	if err != nil {
		t.Fatal(err)
	}
	return r.Code
}

func record(t *testing.T, svc *domain.Service, tenant string, evs ...domain.EventInput) []domain.EventOutcome {
	t.Helper()
	out, err := svc.RecordEvents(t.Context(), domain.Caller{Tenant: tenant}, evs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func at(d time.Duration) *time.Time {
	t := now.Add(-d)
	return &t
}
