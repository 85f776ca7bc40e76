package listing

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
)

type row struct {
	created time.Time
	id      string
}

// rows are n rows in (created, id) order, two per microsecond.
func rows(n int) []row {
	out := make([]row, n)
	for i := range out {
		out[i] = row{created: time.UnixMicro(int64(i / 2)).UTC(), id: fmt.Sprint("r", i%2)}
	}
	return out
}

// byCreated reads all after the cursor, up to limit, as a store does.
func byCreated(all []row, reads *[]int) func(after Cursor, limit int) ([]row, error) {
	return func(after Cursor, limit int) ([]row, error) {
		*reads = append(*reads, limit)
		i := 0
		if !after.IsZero() {
			i = slices.IndexFunc(all, func(r row) bool { return r.created.Equal(after.Created) && r.id == after.ID }) + 1
		}
		return all[i:min(len(all), i+limit)], nil
	}
}

func at(r row) Cursor { return Cursor{Created: r.created, ID: r.id} }

func TestByCreatedEndsWithoutAnEmptyPage(t *testing.T) {
	for _, n := range []int{0, 1, 5, 6, 7} {
		all := rows(n)
		var reads []int
		var got []row
		pages := 0
		for token := ""; ; {
			p, next, err := ByCreated(page.Request{PageSize: 3, PageToken: token}, "acme|x", byCreated(all, &reads), at)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(p) == 0 && n > 0 {
				t.Fatalf("%d rows: page %d is empty", n, pages)
			}
			got = append(got, p...)
			if next == "" {
				break
			}
			token = next
		}
		if want := max(1, (n+2)/3); pages != want || !slices.Equal(got, all) {
			t.Fatalf("%d rows: %d pages holding %v, want %d holding %v", n, pages, got, want, all)
		}
		for _, limit := range reads {
			if limit != 4 {
				t.Fatalf("%d rows: the store was asked for %d rows, want one more than the page", n, limit)
			}
		}
	}
}

func TestByOffsetEndsWithoutAnEmptyPage(t *testing.T) {
	all := []int{9, 8, 7, 6, 5, 4}
	read := func(offset, limit int) ([]int, error) {
		return all[min(offset, len(all)):min(len(all), offset+limit)], nil
	}
	var got []int
	pages := 0
	for token := ""; ; {
		p, next, err := ByOffset(page.Request{PageSize: 2, PageToken: token}, "acme|", read)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, p...)
		if next == "" {
			break
		}
		token = next
	}
	if pages != 3 || !slices.Equal(got, all) {
		t.Fatalf("%d pages holding %v, want 3 holding %v", pages, got, all)
	}
}

func TestTokensRefused(t *testing.T) {
	all := rows(4)
	var reads []int
	_, next, err := ByCreated(page.Request{PageSize: 1}, "acme|secrets", byCreated(all, &reads), at)
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, %v", next, err)
	}
	offsetToken := page.Encode("-1", "acme|")
	for name, try := range map[string]func() error{
		"another scope": func() error {
			_, _, err := ByCreated(page.Request{PageToken: next}, "acme|endpoints", byCreated(all, &reads), at)
			return err
		},
		"not a cursor": func() error {
			_, _, err := ByCreated(page.Request{PageToken: page.Encode("17", "acme|secrets")}, "acme|secrets", byCreated(all, &reads), at)
			return err
		},
		"a negative offset": func() error {
			_, _, err := ByOffset(page.Request{PageToken: offsetToken}, "acme|", func(int, int) ([]int, error) { return nil, nil })
			return err
		},
	} {
		if err := try(); apierr.Reason(err) != page.ReasonPageTokenInvalid {
			t.Errorf("%s: %v, want %s", name, err, page.ReasonPageTokenInvalid)
		}
	}
	if _, _, err := ByCreated(page.Request{PageSize: -1}, "acme|secrets", byCreated(all, &reads), at); apierr.Reason(err) != page.ReasonPageSizeInvalid {
		t.Errorf("negative page size: %v", err)
	}
}
