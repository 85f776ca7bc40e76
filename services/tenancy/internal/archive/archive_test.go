package archive_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/tenancy/internal/archive"
)

type file struct {
	name   string
	chunks []string
}

func write(t *testing.T, mtime time.Time, files []file) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, mtime)
	for _, f := range files {
		err := w.Add(f.name, int64(len(strings.Join(f.chunks, ""))), func(out io.Writer) error {
			for _, c := range f.chunks {
				if _, err := io.WriteString(out, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Files written chunk by chunk read back whole and in order, and the same
// files make the same bytes (a resumed export's archive is identical).
func TestRoundTrip(t *testing.T) {
	mtime := time.Date(2026, 12, 7, 9, 0, 0, 123, time.UTC)
	files := []file{
		{"manifest.json", []string{`{"files":[]}`, "\n"}},
		{"queue/jobs.jsonl", []string{`{"id":1}` + "\n", `{"id":2}` + "\n"}},
		{"finops/empty.jsonl", nil},
		{"growth/" + strings.Repeat("k", 120) + ".jsonl", []string{strings.Repeat("x", 70000)}},
	}
	a := write(t, mtime, files)
	if b := write(t, mtime, files); !bytes.Equal(a, b) {
		t.Fatal("the same files made different archives")
	}
	got, err := archive.ReadAll(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(files) {
		t.Fatalf("%d files, want %d", len(got), len(files))
	}
	for i, f := range files {
		if got[i].Name != f.name || string(got[i].Data) != strings.Join(f.chunks, "") {
			t.Errorf("file %d = %s (%d bytes), want %s", i, got[i].Name, len(got[i].Data), f.name)
		}
	}
}

// A file whose stored bytes disagree with its size fails the archive
// rather than make a corrupt one.
func TestSizeMismatch(t *testing.T) {
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, time.Now())
	err := w.Add("a.jsonl", 10, func(out io.Writer) error {
		_, err := io.WriteString(out, "short")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "5 bytes stored, 10 expected") {
		t.Fatalf("err = %v", err)
	}
	w = archive.NewWriter(&buf, time.Now())
	if err := w.Add("b.jsonl", 2, func(out io.Writer) error { _, err := io.WriteString(out, "long"); return err }); err == nil {
		t.Fatal("a file longer than its size was written")
	}
}

func TestReadAllRefusesGarbage(t *testing.T) {
	if _, err := archive.ReadAll(strings.NewReader("not gzip")); err == nil {
		t.Fatal("garbage read as an archive")
	}
}
