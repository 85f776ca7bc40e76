package code

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
)

// One million codes claimed against a unique index (a set, here): no
// duplicate, every character from the alphabet, every character of the
// alphabet used in every position, and the raw draws collide about as
// rarely as the birthday bound says (expected 0.6 in a million).
func TestClaimMillionUnique(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 50_000
	}
	taken := make(map[string]struct{}, n)
	collisions := 0
	claim := func(c string) (bool, error) {
		if _, dup := taken[c]; dup {
			collisions++
			return false, nil
		}
		taken[c] = struct{}{}
		return true, nil
	}
	var used [Length][256]bool
	for range n {
		c, err := Claim(New, claim, 8)
		if err != nil {
			t.Fatal(err)
		}
		if !Valid(c) {
			t.Fatalf("invalid code %q", c)
		}
		for i := range Length {
			used[i][c[i]] = true
		}
	}
	if len(taken) != n {
		t.Fatalf("%d distinct codes, want %d", len(taken), n)
	}
	if collisions > 6 {
		t.Errorf("%d collisions in %d draws: the generator is not uniform", collisions, n)
	}
	for i := range Length {
		for j := range len(Alphabet) {
			if !used[i][Alphabet[j]] {
				t.Errorf("position %d never drew %q", i, Alphabet[j])
			}
		}
	}
}

func TestClaimRetriesThenGivesUp(t *testing.T) {
	draws := []string{"22222222", "33333333", "44444444"}
	gen := func() (string, error) { c := draws[0]; draws = draws[1:]; return c, nil }
	c, err := Claim(gen, func(c string) (bool, error) { return c == "33333333", nil }, 3)
	if err != nil || c != "33333333" {
		t.Fatalf("Claim = %q, %v; want the second draw", c, err)
	}
	_, err = Claim(New, func(string) (bool, error) { return false, nil }, 4)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Claim with every code taken = %v, want ErrExhausted", err)
	}
}

// Rejection sampling: bytes from 248 up are skipped, so a reader of only
// such bytes, then one valid byte per character, yields those characters.
func TestNewFromRejectsBiasedBytes(t *testing.T) {
	src := append(bytes.Repeat([]byte{255, 248}, 20), 0, 1, 2, 30, 31, 62, 247, 8)
	c, err := NewFrom(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	// 31 → 0 and 62 → 0 (mod 31), 247 → 30: "Z".
	if want := "234Z22Z" + Alphabet[8:9]; c != want {
		t.Fatalf("NewFrom = %q, want %q", c, want)
	}
	if _, err := NewFrom(bytes.NewReader(bytes.Repeat([]byte{250}, 100))); err == nil {
		t.Fatal("a reader that runs dry gave a code")
	}
}

func TestAlphabetHasNoLookalikes(t *testing.T) {
	if len(Alphabet) != 31 {
		t.Fatalf("alphabet has %d characters", len(Alphabet))
	}
	for c := range lookalikes {
		if strings.IndexByte(Alphabet, c) >= 0 {
			t.Errorf("look-alike %q is in the alphabet", c)
		}
	}
	for _, alts := range lookalikes {
		for i := range len(alts) {
			if strings.IndexByte(Alphabet, alts[i]) < 0 {
				t.Errorf("look-alike expands to %q, not in the alphabet", alts[i])
			}
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		typed string
		want  []string
		err   error
	}{
		{typed: "3BCF9A5F", want: []string{"3BCF9A5F"}},
		{typed: "  3bcf-9a5f ", want: []string{"3BCF9A5F"}},
		{typed: "3bc_f9 a5f", want: []string{"3BCF9A5F"}},
		{typed: "3BCF9A50", want: []string{"3BCF9A5D", "3BCF9A5Q"}},
		{typed: "3BCF9A5o", want: []string{"3BCF9A5D", "3BCF9A5Q"}},
		{typed: "1BCF9A5F", want: []string{"7BCF9A5F", "JBCF9A5F", "TBCF9A5F"}},
		{typed: "lBCF9A5F", want: []string{"7BCF9A5F", "JBCF9A5F", "TBCF9A5F"}},
		{typed: "iBCF9A5F", want: []string{"7BCF9A5F", "JBCF9A5F", "TBCF9A5F"}},
		{typed: "", err: ErrInvalid},
		{typed: "3BCF9A5", err: ErrInvalid},
		{typed: "3BCF9A5FF", err: ErrInvalid},
		{typed: "3BCF9A5!", err: ErrInvalid},
		{typed: "3BCF9A5É", err: ErrInvalid},
		{typed: strings.Repeat("-", 70) + "3BCF9A5F", err: ErrInvalid},
		{typed: "0OIL9A5F", err: ErrTooAmbiguous},
	} {
		got, err := Parse(tc.typed)
		if !errors.Is(err, tc.err) || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tc.typed, got, err, tc.want, tc.err)
		}
	}
	// Three look-alikes of the three-way kind: the most candidates.
	got, err := Parse("1IL9A5FB")
	if err != nil || len(got) != MaxCandidates || !slices.IsSorted(got) {
		t.Fatalf("Parse(1IL9A5FB) = %d candidates, %v", len(got), err)
	}
}

// Every generated code parses to itself, whatever its case and grouping.
func TestParseRoundTrip(t *testing.T) {
	for range 1000 {
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		typed := strings.ToLower(c[:4]) + "-" + c[4:]
		if got, err := Parse(typed); err != nil || len(got) != 1 || got[0] != c {
			t.Fatalf("Parse(%q) = %q, %v; want [%s]", typed, got, err, c)
		}
	}
}

// FuzzParse: Parse never panics; it returns at most MaxCandidates sorted,
// distinct, valid codes, or an error and no candidates; and a code it
// returns parses to itself alone.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"3BCF9A5F", "3bcf-9a5f", "0OIL9A5F", "1IL9A5FB", "", "   ", "ÉÉÉÉ"} {
		f.Add(s)
	}
	seed := make([]byte, 16)
	_, _ = rand.Read(seed)
	f.Add(string(seed))
	f.Fuzz(func(t *testing.T, typed string) {
		got, err := Parse(typed)
		if err != nil {
			if got != nil {
				t.Fatalf("Parse(%q) returned candidates with error %v", typed, err)
			}
			return
		}
		if len(got) == 0 || len(got) > MaxCandidates || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("Parse(%q) = %q", typed, got)
		}
		for _, c := range got {
			if !Valid(c) {
				t.Fatalf("Parse(%q) gave invalid %q", typed, c)
			}
			if again, err := Parse(c); err != nil || len(again) != 1 || again[0] != c {
				t.Fatalf("Parse(%q) = %q, %v", c, again, err)
			}
		}
	})
}
