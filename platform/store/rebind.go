package store

import (
	"strconv"
	"strings"
)

// Rebind turns the `?` placeholders of query into the dialect's form: $1..$n
// on PostgreSQL, unchanged on SQLite. A `?` inside a string literal, quoted
// identifier, dollar-quoted string or comment is not a placeholder and is
// kept. The scan is one pass without allocation when there is no `?`, cheap
// next to the round trip it precedes, so results are not cached.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || strings.IndexByte(query, '?') < 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); {
		end := skipNonCode(query, i)
		if end > i {
			b.WriteString(query[i:end])
			i = end
			continue
		}
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		} else {
			b.WriteByte(query[i])
		}
		i++
	}
	return b.String()
}

// skipNonCode returns the end of the literal, quoted identifier or comment
// starting at q[i], or i when none starts there. An unterminated one runs to
// the end of q, as PostgreSQL would reject it anyway.
func skipNonCode(q string, i int) int {
	switch c := q[i]; {
	case c == '\'':
		// E'…' strings take backslash escapes; standard strings do not.
		escapes := i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i == 1 || !isIdentByte(q[i-2]))
		return skipQuoted(q, i, '\'', escapes)
	case c == '"':
		return skipQuoted(q, i, '"', false)
	case c == '-' && strings.HasPrefix(q[i:], "--"):
		if nl := strings.IndexByte(q[i:], '\n'); nl >= 0 {
			return i + nl + 1
		}
		return len(q)
	case c == '/' && strings.HasPrefix(q[i:], "/*"):
		return skipBlockComment(q, i)
	case c == '$' && (i == 0 || !isIdentByte(q[i-1])):
		return skipDollarQuoted(q, i)
	}
	return i
}

// skipQuoted returns the index after the closing quote of the string that
// opens at q[i]; a doubled quote stands for itself.
func skipQuoted(q string, i int, quote byte, backslashEscapes bool) int {
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			if backslashEscapes {
				j++
			}
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// skipBlockComment handles /* … */ comments, which nest in PostgreSQL.
func skipBlockComment(q string, i int) int {
	depth := 0
	for j := i; j+1 < len(q); {
		switch {
		case q[j] == '/' && q[j+1] == '*':
			depth++
			j += 2
		case q[j] == '*' && q[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j
			}
		default:
			j++
		}
	}
	return len(q)
}

// skipDollarQuoted handles $$…$$ and $tag$…$tag$ strings. `$` followed by a
// digit is a positional parameter, not a quote.
func skipDollarQuoted(q string, i int) int {
	j := i + 1
	for j < len(q) && q[j] != '$' {
		c := q[j]
		if !isIdentByte(c) || (j == i+1 && c >= '0' && c <= '9') {
			return i
		}
		j++
	}
	if j == len(q) {
		return i
	}
	tag := q[i : j+1]
	if end := strings.Index(q[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag)
	}
	return len(q)
}

// isIdentByte reports whether c can continue an unquoted identifier
// (non-ASCII bytes included, as PostgreSQL allows letters beyond ASCII).
func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
