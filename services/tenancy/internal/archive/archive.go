// Package archive writes and reads a tenant export's archive: a
// gzip-compressed tar of regular files, written as it is read so that no
// file is held in memory. Every header carries the export's creation time
// and fixed modes, so the same files always make the same bytes.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"time"
)

// Writer writes the files of one archive in order.
type Writer struct {
	gz    *gzip.Writer
	tw    *tar.Writer
	mtime time.Time
}

// NewWriter returns a Writer onto w whose entries are dated mtime.
func NewWriter(w io.Writer, mtime time.Time) *Writer {
	gz := gzip.NewWriter(w)
	return &Writer{gz: gz, tw: tar.NewWriter(gz), mtime: mtime.UTC().Truncate(time.Second)}
}

// Add writes file name of size bytes, whose content write produces; it
// fails when write produces another number of bytes.
func (w *Writer) Add(name string, size int64, write func(io.Writer) error) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: w.mtime, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	cw := &countingWriter{w: w.tw}
	if err := write(cw); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if cw.n != size {
		return fmt.Errorf("archive %s: %d bytes stored, %d expected", name, cw.n, size)
	}
	return nil
}

// Close ends the archive (not the underlying writer).
func (w *Writer) Close() error {
	return errors.Join(w.tw.Close(), w.gz.Close())
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// File is one file read back from an archive.
type File struct {
	Name string
	Data []byte
}

// ReadAll reads every file of an archive, in order (for tests and tools:
// it holds the files in memory).
func ReadAll(r io.Reader) ([]File, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var out []File
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read archive %s: %w", hdr.Name, err)
		}
		out = append(out, File{Name: hdr.Name, Data: data})
	}
}
