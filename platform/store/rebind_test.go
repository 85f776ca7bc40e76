package store_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/store"
)

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"INSERT INTO t VALUES (?,?),(?,?)", "INSERT INTO t VALUES ($1,$2),($3,$4)"},
		{"SELECT '?', ? FROM t", "SELECT '?', $1 FROM t"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{`SELECT "col?" FROM t WHERE x = ?`, `SELECT "col?" FROM t WHERE x = $1`},
		{`SELECT "a""?" , ?`, `SELECT "a""?" , $1`},
		{`SELECT E'\'?', ?`, `SELECT E'\'?', $1`},
		{`SELECT e'\\', ?`, `SELECT e'\\', $1`},
		// Outside E'' a backslash is an ordinary character.
		{`SELECT '\', ?`, `SELECT '\', $1`},
		// "type'…'" is not an E string even though the identifier ends in e.
		{`SELECT type'\', ?`, `SELECT type'\', $1`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"SELECT ? -- trailing ?", "SELECT $1 -- trailing ?"},
		{"SELECT /* ? /* nested ? */ ? */ ?", "SELECT /* ? /* nested ? */ ? */ $1"},
		{"SELECT $$ ? $$, ?", "SELECT $$ ? $$, $1"},
		{"SELECT $fn$ ? $x$ ? $fn$, ?", "SELECT $fn$ ? $x$ ? $fn$, $1"},
		{"SELECT a$b, ?", "SELECT a$b, $1"},
		// $1 is a parameter, not the start of a dollar quote (mixing the two
		// placeholder styles is the caller's bug).
		{"SELECT $1, ?", "SELECT $1, $1"},
		{"SELECT 5-?, 4/?", "SELECT 5-$1, 4/$2"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
		{"SELECT ? /* unterminated ?", "SELECT $1 /* unterminated ?"},
		{"SELECT ?, $tag$ unterminated ?", "SELECT $1, $tag$ unterminated ?"},
	}
	for _, tt := range tests {
		if got := store.Postgres.Rebind(tt.in); got != tt.want {
			t.Errorf("Postgres.Rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := store.SQLite.Rebind(tt.in); got != tt.in {
			t.Errorf("SQLite.Rebind(%q) = %q, want it unchanged", tt.in, got)
		}
	}
}

func TestRebindTenPlaceholders(t *testing.T) {
	got := store.Postgres.Rebind(strings.Repeat("?,", 10))
	if want := "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzRebind checks that the output is the input with some `?` replaced, in
// order, by $1..$n, and that every `?` is replaced when the input has no
// character that can open a literal or comment.
func FuzzRebind(f *testing.F) {
	for _, seed := range []string{
		"SELECT * FROM t WHERE a = ? AND b = ?",
		"SELECT '?''?', \"?\", E'\\'?', ? -- ?\n/* ? /* ? */ */ $a$ ? $a$ ?",
		"INSERT INTO t VALUES (?,?,?)",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := store.Postgres.Rebind(in)
		n := 0
		j := 0
		for i := 0; i < len(in); i++ {
			if in[i] == '?' && j < len(out) && out[j] == '$' {
				num := strconv.Itoa(n + 1)
				if !strings.HasPrefix(out[j+1:], num) {
					t.Fatalf("Rebind(%q) = %q: placeholder %d misnumbered", in, out, n+1)
				}
				n++
				j += 1 + len(num)
				continue
			}
			if j >= len(out) || out[j] != in[i] {
				t.Fatalf("Rebind(%q) = %q: differs beyond placeholders at input byte %d", in, out, i)
			}
			j++
		}
		if j != len(out) {
			t.Fatalf("Rebind(%q) = %q: trailing output", in, out)
		}
		if !strings.ContainsAny(in, `'"-/$`) && n != strings.Count(in, "?") {
			t.Fatalf("Rebind(%q) = %q: replaced %d of %d placeholders", in, out, n, strings.Count(in, "?"))
		}
		if got := store.SQLite.Rebind(in); got != in {
			t.Fatalf("SQLite.Rebind(%q) = %q, want it unchanged", in, got)
		}
	})
}
