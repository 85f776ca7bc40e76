package domain_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

// Codes are found however they are typed: any case, with separators, and
// with 0/O read as D or Q and 1/I/L as 7, J or T; a typed code that could
// be two codes, or is too garbled, is refused with its reason.
func TestTypoTolerantLookup(t *testing.T) {
	draws := []string{"ABCD2345", "ABCQ2345", "7XYZ2345", "JKMN6789"}
	svc := newServiceWithCodes(t, draws)
	for i := range draws {
		create(t, svc, "acme", fmt.Sprint("referrer-", i), "default")
	}
	for typed, want := range map[string]string{
		"ABCD2345":   "ABCD2345",
		"abcd-2345":  "ABCD2345",
		" abcq 2345": "ABCQ2345",
		"1XYZ2345":   "7XYZ2345", // 1 could be 7, J or T: only 7XYZ2345 exists
		"lxyz2345":   "7XYZ2345",
		"IKMN6789":   "JKMN6789",
		"ikmn_6789":  "JKMN6789",
	} {
		out := record(t, svc, "acme", domain.EventInput{Code: typed, Type: "click", ID: "c-" + typed})
		if out[0].Code != want {
			t.Errorf("%q credited %q, want %s", typed, out[0].Code, want)
		}
	}
	for typed, want := range map[string]struct {
		code   codes.Code
		reason string
	}{
		"ABC02345":  {codes.InvalidArgument, domain.ReasonCodeAmbiguous}, // D or Q: both exist
		"abco-2345": {codes.InvalidArgument, domain.ReasonCodeAmbiguous},
		"ABCD2346":  {codes.NotFound, domain.ReasonReferralNotFound},
		"0OIL2345":  {codes.InvalidArgument, domain.ReasonCodeTooAmbiguous},
		"ABCD234":   {codes.InvalidArgument, domain.ReasonCodeInvalid},
		"ABCD234!":  {codes.InvalidArgument, domain.ReasonCodeInvalid},
	} {
		_, err := svc.RecordEvents(t.Context(), domain.Caller{Tenant: "acme"},
			[]domain.EventInput{{Code: typed, Type: "click", ID: "x-" + typed}})
		if e, ok := apierr.As(err); !ok || e.Code != want.code || e.Reason != want.reason || e.Domain != domain.Domain {
			t.Errorf("%q: %v, want %v %s", typed, err, want.code, want.reason)
		}
	}
	// Another tenant's code is not found, even exactly typed.
	_, err := svc.RecordEvents(t.Context(), domain.Caller{Tenant: "globex"},
		[]domain.EventInput{{Code: "ABCD2345", Type: "click", ID: "g"}})
	if apierr.Reason(err) != domain.ReasonReferralNotFound {
		t.Errorf("globex using acme's code: %v", err)
	}
	// The public click resolves across tenants the same way.
	click, err := svc.TrackClick(t.Context(), domain.ClickRequest{Code: "abcd-2345"})
	if err != nil || click.Code != "ABCD2345" || click.LandingURL != "https://example.com/" || click.EventID != "click-1" {
		t.Fatalf("click = %+v, %v", click, err)
	}
	if _, err := svc.TrackClick(t.Context(), domain.ClickRequest{Code: "ABC02345"}); apierr.Reason(err) != domain.ReasonCodeAmbiguous {
		t.Fatalf("ambiguous click = %v", err)
	}
}

// newServiceWithCodes is newService whose codes are draws, in order.
func newServiceWithCodes(t *testing.T, draws []string) *domain.Service {
	t.Helper()
	db := storetest.Backends()[0].Open(t, storeMigrations)
	return serviceOn(t, db, func() (string, error) { c := draws[0]; draws = draws[1:]; return c, nil })
}
