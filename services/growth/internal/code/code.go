// Package code makes referral codes and reads them back as people type
// them. A code is Length characters of Alphabet, which leaves out 0, O, 1,
// I and L: since they never appear in a code, a typed one can only be a
// misreading, and Parse turns it into the characters it could stand for.
package code

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Alphabet is the characters of a code: digits and upper-case letters
// without the look-alikes 0/O and 1/I/L.
const Alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// Length is the number of characters of a code.
const Length = 8

// MaxAmbiguous bounds the look-alike characters a typed code may hold, so
// that its candidates (at most 3^MaxAmbiguous = 27) fit one lookup.
const MaxAmbiguous = 3

// MaxCandidates is the most candidates Parse returns.
const MaxCandidates = 27

// maxInput bounds what Parse reads: a code with generous separators.
const maxInput = 64

// lookalikes maps each character that never appears in a code to the code
// characters it is taken for: 0/O for D or Q, 1/I/L for 7, T or J.
var lookalikes = map[byte]string{
	'0': "DQ", 'O': "DQ",
	'1': "7JT", 'I': "7JT", 'L': "7JT",
}

// Errors of Parse.
var (
	ErrInvalid      = errors.New("not a referral code")
	ErrTooAmbiguous = errors.New("too many look-alike characters")
)

// New returns a random code from crypto/rand.
func New() (string, error) { return NewFrom(rand.Reader) }

// NewFrom returns a code drawn from r. Each character takes one byte below
// the largest multiple of len(Alphabet) that fits in a byte and rejects the
// others, so every character is equally likely (no modulo bias).
func NewFrom(r io.Reader) (string, error) {
	const n = len(Alphabet)
	const limit = 256 - 256%n // 248: bytes at or above it are redrawn
	var out [Length]byte
	buf := make([]byte, Length+Length/2) // a few spare bytes for rejects
	for i := 0; i < Length; {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("referral code: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out[i] = Alphabet[int(b)%n]
			if i++; i == Length {
				break
			}
		}
	}
	return string(out[:]), nil
}

// ErrExhausted is returned by Claim when every try was taken.
var ErrExhausted = errors.New("referral code: every try was taken")

// Claim draws codes with gen until claim takes one, at most tries times.
// Codes are random, so two draws collide: among a million codes the chance
// of some pair being equal is about 45% (31^8 ≈ 8.5e11 codes, the birthday
// bound). claim is the unique index that catches it: it reports false for
// a code already taken, and the next draw almost surely is free.
func Claim(gen func() (string, error), claim func(code string) (bool, error), tries int) (string, error) {
	for range tries {
		c, err := gen()
		if err != nil {
			return "", err
		}
		ok, err := claim(c)
		if err != nil {
			return "", err
		}
		if ok {
			return c, nil
		}
	}
	return "", ErrExhausted
}

// Valid reports whether s is a code exactly as generated.
func Valid(s string) bool {
	if len(s) != Length {
		return false
	}
	for i := range len(s) {
		if strings.IndexByte(Alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Parse reads a code as typed: it trims it, folds ASCII case and drops
// spaces, hyphens and underscores; then each look-alike character is
// expanded into what it could stand for. It returns the candidates, sorted
// (just the code itself when nothing was ambiguous); ErrInvalid for anything
// that cannot be a code and ErrTooAmbiguous for more than MaxAmbiguous
// look-alikes.
func Parse(typed string) ([]string, error) {
	if len(typed) > maxInput {
		return nil, ErrInvalid
	}
	norm := make([]byte, 0, Length)
	ambiguous := 0
	for i := range len(typed) {
		c := typed[i]
		switch {
		case c == ' ' || c == '-' || c == '_' || c == '\t':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if _, ok := lookalikes[c]; ok {
			ambiguous++
		} else if strings.IndexByte(Alphabet, c) < 0 {
			return nil, ErrInvalid
		}
		if len(norm) == Length {
			return nil, ErrInvalid
		}
		norm = append(norm, c)
	}
	if len(norm) != Length {
		return nil, ErrInvalid
	}
	if ambiguous > MaxAmbiguous {
		return nil, ErrTooAmbiguous
	}
	out := []string{""}
	for _, c := range norm {
		alts, ok := lookalikes[c]
		if !ok {
			alts = string(c)
		}
		next := make([]string, 0, len(out)*len(alts))
		for _, prefix := range out {
			for j := range len(alts) {
				next = append(next, prefix+alts[j:j+1])
			}
		}
		out = next
	}
	return out, nil
}
