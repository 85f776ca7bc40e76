package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// Who counts as one visitor: the visitor id the click presents, else its
// client (address without the port, IPv6 by /64, X-Forwarded-For,
// User-Agent). Each row is a click in order; want says whether it counts.
func TestClickVisitors(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			svc := newService(t, b)
			code := create(t, svc, "acme", "ann", "default")
			chrome, firefox := "Mozilla/5.0 Chrome/126", "Mozilla/5.0 Firefox/127"
			first, err := svc.TrackClick(t.Context(), domain.ClickRequest{Code: code, Visitor: domain.Visitor{Address: "203.0.113.5:1111", UserAgent: chrome}})
			if err != nil || first.Duplicate || first.EventID == "" || !domain.ValidVisitorID(first.VisitorID) {
				t.Fatalf("first click = %+v, %v", first, err)
			}
			for i, step := range []struct {
				v    domain.Visitor
				want bool
			}{
				{domain.Visitor{ID: first.VisitorID, Address: "198.51.100.9:1", UserAgent: "other"}, false}, // its cookie, elsewhere
				{domain.Visitor{Address: "203.0.113.5:2222", UserAgent: chrome}, false},                     // new connection, no cookie
				{domain.Visitor{Address: "203.0.113.5", UserAgent: chrome, ID: "not-a-visitor-id"}, false},  // a made-up cookie is none
				{domain.Visitor{Address: "203.0.113.5:1111", UserAgent: firefox}, true},                     // another browser
				{domain.Visitor{Address: "203.0.113.6:1111", UserAgent: chrome}, true},                      // another address
				{domain.Visitor{Address: "203.0.113.5:1111", UserAgent: chrome, ForwardedFor: "192.0.2.1"}, true},
				{domain.Visitor{Address: "[2001:db8:1:2::1]:443", UserAgent: chrome}, true},
				{domain.Visitor{Address: "[2001:db8:1:2:aaaa::7]:444", UserAgent: chrome}, false}, // same /64
				{domain.Visitor{Address: "[2001:db8:1:3::1]:443", UserAgent: chrome}, true},
				{domain.Visitor{Address: "[::ffff:203.0.113.6]:9", UserAgent: chrome}, false}, // IPv4 as IPv6
				{domain.Visitor{ID: domain.NewVisitorID()}, true},                             // a new visitor id of the right shape
				{domain.Visitor{}, true}, // nothing known: one anonymous visitor
				{domain.Visitor{}, false},
			} {
				c, err := svc.TrackClick(t.Context(), domain.ClickRequest{Code: strings.ToLower(code), Visitor: step.v})
				if err != nil {
					t.Fatal(err)
				}
				if c.Duplicate == step.want || (c.EventID != "") != step.want || !domain.ValidVisitorID(c.VisitorID) {
					t.Fatalf("click %d %+v = %+v, want counted %v", i, step.v, c, step.want)
				}
				if domain.ValidVisitorID(step.v.ID) && c.VisitorID != step.v.ID {
					t.Fatalf("click %d: visitor id %q replaced by %q", i, step.v.ID, c.VisitorID)
				}
			}
			st, err := svc.Stats(t.Context(), domain.Caller{Tenant: "acme"}, domain.StatsQuery{})
			if err != nil || st.Totals.Clicks != 8 {
				t.Fatalf("clicks = %d (%v), want 8", st.Totals.Clicks, err)
			}
		})
	}
}

func TestVisitorIDShape(t *testing.T) {
	id := domain.NewVisitorID()
	if len(id) != 22 || !domain.ValidVisitorID(id) || domain.NewVisitorID() == id {
		t.Fatalf("NewVisitorID = %q", id)
	}
	for _, bad := range []string{"", "x", id + "A", id[:21] + "=", id[:21] + "+", strings.Repeat("A", 21) + "B", strings.Repeat("é", 11)} {
		if domain.ValidVisitorID(bad) {
			t.Errorf("ValidVisitorID(%q) = true", bad)
		}
	}
}

// A zero window counts every click; the service refuses bad settings.
func TestClickConfig(t *testing.T) {
	st := store.New(storetest.Backends()[0].Open(t, storeMigrations))
	cfg := domain.Config{
		DefaultRateBPS: 2000, DefaultLandingURL: "https://example.com/", AttributionWindow: time.Hour,
		VisitorKey: make([]byte, 32), MaxCampaigns: 1, NewClickID: domain.NewVisitorID,
	}
	svc, err := domain.NewService(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	code := create(t, svc, "acme", "ann", "")
	for range 3 {
		if c, err := svc.TrackClick(t.Context(), domain.ClickRequest{Code: code, Visitor: domain.Visitor{Address: "203.0.113.5"}}); err != nil || c.Duplicate {
			t.Fatalf("click without dedup = %+v, %v", c, err)
		}
	}
	for name, bad := range map[string]func(*domain.Config){
		"negative window": func(c *domain.Config) { c.ClickDedupWindow = -time.Second },
		"short key":       func(c *domain.Config) { c.VisitorKey = make([]byte, 31) },
		"no campaigns":    func(c *domain.Config) { c.MaxCampaigns = 0 },
		"no click ids":    func(c *domain.Config) { c.NewClickID = nil },
	} {
		c := cfg
		bad(&c)
		if _, err := domain.NewService(st, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
