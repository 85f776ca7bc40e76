// Package bodystream writes a byte stream, such as a CSV or JSON-lines
// export, as the messages of an RPC that returns stream google.api.HttpBody;
// the gateway relays them as one HTTP response body.
package bodystream

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MaxChunk is the most bytes of one message: big enough that per-message
// overhead does not matter, small enough to stay far below gRPC's 4 MiB
// message limit and to let the gateway flush the response as it goes.
const MaxChunk = 64 << 10

// Stream is the server side of an RPC that returns stream google.api.HttpBody.
type Stream = grpc.ServerStreamingServer[httpbody.HttpBody]

var errClosed = errors.New("bodystream: write after close")

// Writer packs what is written into messages of exactly MaxChunk bytes (the
// last one shorter). Neither a byte nor the content-disposition header
// reaches the client before the first full message or Close: a handler that
// fails before then returns an ordinary gRPC error, which the gateway
// answers with its JSON error rather than a truncated, named download.
type Writer struct {
	stream      Stream
	contentType string
	header      metadata.MD // sent with the first message
	buf         []byte
	started     bool // the header went out, with a message or alone
	closed      bool
	err         error // the first send error; every later call returns it
}

// NewWriter returns a Writer whose messages carry contentType. A non-empty
// filename makes the response a download of that name: the gateway passes
// the content-disposition header through to HTTP.
func NewWriter(stream Stream, contentType, filename string) *Writer {
	w := &Writer{stream: stream, contentType: contentType, buf: make([]byte, 0, MaxChunk)}
	if filename != "" {
		w.header = metadata.Pairs("content-disposition", attachment(filename))
	}
	return w
}

// attachment is the Content-Disposition value of a download named filename,
// the name a quoted-string (RFC 6266).
func attachment(filename string) string {
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(filename)
	return `attachment; filename="` + q + `"`
}

// Write buffers p and sends every full message.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) >= MaxChunk {
			// A full message straight from p: Send serializes it before
			// it returns, so nothing holds on to p.
			if err := w.send(p[:MaxChunk]); err != nil {
				return n, err
			}
			n, p = n+MaxChunk, p[MaxChunk:]
			continue
		}
		k := copy(w.buf[len(w.buf):MaxChunk], p)
		w.buf = w.buf[:len(w.buf)+k]
		n, p = n+k, p[k:]
		if len(w.buf) == MaxChunk {
			if err := w.send(w.buf); err != nil {
				return n, err
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// Close sends what is buffered. An empty body sends no message, but still
// the header, so an empty download keeps its attachment name.
func (w *Writer) Close() error {
	if w.err != nil || w.closed {
		return w.err
	}
	w.closed = true
	if len(w.buf) > 0 {
		err := w.send(w.buf)
		w.buf = nil
		return err
	}
	if !w.started && len(w.header) > 0 {
		w.started = true
		if err := w.stream.SendHeader(w.header); err != nil {
			w.err = fmt.Errorf("send header: %w", err)
		}
	}
	return w.err
}

func (w *Writer) send(b []byte) error {
	if !w.started {
		w.started = true
		// SetHeader, not SendHeader: the header goes out with this message.
		if len(w.header) > 0 {
			if err := w.stream.SetHeader(w.header); err != nil {
				w.err = fmt.Errorf("set header: %w", err)
				return w.err
			}
		}
	}
	if err := w.stream.Send(&httpbody.HttpBody{ContentType: w.contentType, Data: b}); err != nil {
		w.err = fmt.Errorf("send body: %w", err)
	}
	return w.err
}
