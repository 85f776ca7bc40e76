package page

import (
	"testing"

	"github.com/echopilot/echopilot/platform/apierr"
)

func TestSize(t *testing.T) {
	for _, tt := range []struct {
		in      int32
		want    int
		wantErr bool
	}{{0, 100, false}, {1, 1, false}, {1000, 1000, false}, {1_000_000, 1000, false}, {-1, 0, true}} {
		got, err := Size(tt.in, 100, 1000)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Size(%d) = %d, %v", tt.in, got, err)
		}
		if err != nil && apierr.Reason(err) != ReasonPageSizeInvalid {
			t.Errorf("reason = %q", apierr.Reason(err))
		}
	}
}

func TestRequestSize(t *testing.T) {
	for _, tt := range []struct {
		in   Request
		want int
	}{{Request{}, 50}, {Request{PageSize: 7, PageToken: "x"}, 7}, {Request{PageSize: 5000}, 500}} {
		if got, err := tt.in.Size(50, 500); err != nil || got != tt.want {
			t.Errorf("%+v.Size(50, 500) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if _, err := (Request{PageSize: -1}).Size(50, 500); apierr.Reason(err) != ReasonPageSizeInvalid {
		t.Errorf("negative size: %v", err)
	}
}

func TestTokenRoundTripAndScope(t *testing.T) {
	tok := Encode("acme", "tenants")
	got, err := Decode(tok, "tenants")
	if err != nil || got != "acme" {
		t.Fatalf("Decode = %q, %v", got, err)
	}
	if _, err := Decode(tok, "other"); apierr.Reason(err) != ReasonPageTokenInvalid {
		t.Fatalf("token accepted for another scope: %v", err)
	}
	for _, bad := range []string{"!!!", "e30", "bm90IGpzb24"} {
		if _, err := Decode(bad, "tenants"); apierr.Reason(err) != ReasonPageTokenInvalid {
			t.Errorf("Decode(%q) = %v", bad, err)
		}
	}
	if Encode("", "x") != "" {
		t.Fatal("empty key must give no token")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode("acme", "tenants"))
	f.Add("")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, tok string) {
		after, err := Decode(tok, "tenants")
		if err == nil && tok != "" && after == "" {
			t.Fatalf("accepted %q with an empty key", tok)
		}
	})
}

func TestTrim(t *testing.T) {
	id := func(s string) string { return s }
	rows, next := Trim([]string{"a", "b", "c"}, 2, id, "s")
	if len(rows) != 2 || rows[1] != "b" {
		t.Fatalf("rows = %v", rows)
	}
	if after, err := Decode(next, "s"); err != nil || after != "b" {
		t.Fatalf("next continues after %q, %v; want b", after, err)
	}
	rows, next = Trim([]string{"a", "b"}, 2, id, "s")
	if len(rows) != 2 || next != "" {
		t.Fatalf("a full last page gave %v, next %q; want no next page", rows, next)
	}
	if rows, next = Trim([]string(nil), 2, id, "s"); len(rows) != 0 || next != "" {
		t.Fatalf("empty = %v, %q", rows, next)
	}
}
