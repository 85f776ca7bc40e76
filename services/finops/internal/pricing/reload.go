package pricing

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
)

// File is a price table read from a file and read again when the file
// changes (Reload), so an operator adds a price by editing the file: no
// restart, and the re-pricing job runs on the change. It prices with the
// table last read whole; a file that no longer parses keeps the old table.
type File struct {
	path  string
	table atomic.Pointer[Table]

	mu   sync.Mutex // serializes Reload
	seen fileStamp
}

// fileStamp is what tells a changed file: its modification time and size.
type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadFile reads the table at path; it fails as Load does.
func LoadFile(path string) (*File, error) {
	f := &File{path: path}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Price implements domain.Pricer with the current table.
func (f *File) Price(r *domain.UsageRecord) { f.table.Load().Price(r) }

// Table is the current table.
func (f *File) Table() *Table { return f.table.Load() }

// Reload reads the file again when its modification time or size changed
// since the last read, and reports whether the table was replaced. On an
// error the current table stays.
func (f *File) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		return false, err
	}
	stamp := fileStamp{fi.ModTime(), fi.Size()}
	if stamp.mod.Equal(f.seen.mod) && stamp.size == f.seen.size && f.table.Load() != nil {
		return false, nil
	}
	t, err := Load(f.path)
	if err != nil {
		return false, fmt.Errorf("reload prices: %w", err)
	}
	f.table.Store(t)
	f.seen = stamp
	return true, nil
}
