package bodystream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
)

const method = "/bodystream.test.Export/Export"

// serve runs handler as the server-streaming RPC method over bufconn and
// returns a client connection to it.
func serve(t *testing.T, handler func(Stream) error) *grpc.ClientConn {
	t.Helper()
	desc := grpc.ServiceDesc{
		ServiceName: "bodystream.test.Export",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Export",
			ServerStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				if err := ss.RecvMsg(new(emptypb.Empty)); err != nil {
					return err
				}
				return handler(&grpc.GenericServerStream[emptypb.Empty, httpbody.HttpBody]{ServerStream: ss})
			},
		}},
	}
	srv := grpc.NewServer()
	srv.RegisterService(&desc, nil)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return conn
}

// response is what a client (such as the gateway) sees of one call.
type response struct {
	header    metadata.MD // nil: the call ended without one
	headerErr error
	msgs      []*httpbody.HttpBody
	err       error // the call's final status, nil for OK
}

func (r response) body() []byte {
	var b []byte
	for _, m := range r.msgs {
		b = append(b, m.GetData()...)
	}
	return b
}

func call(t *testing.T, handler func(Stream) error) response {
	t.Helper()
	conn := serve(t, handler)
	cs, err := conn.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var r response
	r.header, r.headerErr = cs.Header()
	for {
		m := new(httpbody.HttpBody)
		err := cs.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		r.msgs = append(r.msgs, m)
	}
}

func TestChunksReassembleExactly(t *testing.T) {
	payload := make([]byte, 3*MaxChunk+1234)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	// Writes of every shape: tiny, straddling a message boundary, larger
	// than a message while the buffer is empty and while it is not.
	sizes := []int{1, 7, MaxChunk - 8, 10, 2 * MaxChunk, 3}
	r := call(t, func(s Stream) error {
		w := NewWriter(s, "text/csv; charset=utf-8", "costs.csv")
		rest := payload
		for i := 0; len(rest) > 0; i++ {
			n := min(sizes[i%len(sizes)], len(rest))
			if k, err := w.Write(rest[:n]); k != n || err != nil {
				return status.Errorf(codes.Internal, "write %d: %d, %v", n, k, err)
			}
			rest = rest[n:]
		}
		return w.Close()
	})
	if r.headerErr != nil || r.err != nil {
		t.Fatalf("header error %v, status %v", r.headerErr, r.err)
	}
	if got := r.header.Get("content-disposition"); len(got) != 1 || got[0] != `attachment; filename="costs.csv"` {
		t.Errorf("content-disposition = %q", got)
	}
	if len(r.msgs) != 4 {
		t.Fatalf("%d messages, want 4", len(r.msgs))
	}
	for i, m := range r.msgs {
		want := MaxChunk
		if i == len(r.msgs)-1 {
			want = 1234
		}
		if len(m.GetData()) != want || m.GetContentType() != "text/csv; charset=utf-8" {
			t.Errorf("message %d: %d bytes of %q, want %d", i, len(m.GetData()), m.GetContentType(), want)
		}
	}
	if !bytes.Equal(r.body(), payload) {
		t.Error("reassembled body differs from what was written")
	}
}

func TestSmallBodyIsOneMessageWithoutHeader(t *testing.T) {
	r := call(t, func(s Stream) error {
		w := NewWriter(s, "application/x-ndjson", "")
		if _, err := io.WriteString(w, "{\"a\":1}\n"); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "{\"b\":2}\n"); err != nil {
			return err
		}
		return w.Close()
	})
	if r.headerErr != nil || r.err != nil || len(r.msgs) != 1 || string(r.body()) != "{\"a\":1}\n{\"b\":2}\n" {
		t.Fatalf("header error %v, status %v, %d messages: %q", r.headerErr, r.err, len(r.msgs), r.body())
	}
	if got := r.header.Get("content-disposition"); got != nil {
		t.Errorf("content-disposition = %q without a filename", got)
	}
}

// A failure before a full message leaves the call an ordinary error: no
// header (so no attachment name) and no message before the status.
func TestErrorBeforeFirstMessageIsPlainError(t *testing.T) {
	r := call(t, func(s Stream) error {
		w := NewWriter(s, "text/csv; charset=utf-8", "costs.csv")
		if _, err := io.WriteString(w, "header,row\n"); err != nil {
			return err
		}
		return status.Error(codes.InvalidArgument, "bad days")
	})
	if status.Code(r.err) != codes.InvalidArgument {
		t.Fatalf("status %v, want InvalidArgument", r.err)
	}
	if r.header != nil || len(r.msgs) != 0 {
		t.Fatalf("header %v and %d messages before the error", r.header, len(r.msgs))
	}
}

func TestEmptyDownloadKeepsItsName(t *testing.T) {
	r := call(t, func(s Stream) error { return NewWriter(s, "text/csv; charset=utf-8", `a"b\c.csv`).Close() })
	if r.headerErr != nil || r.err != nil || len(r.msgs) != 0 {
		t.Fatalf("header error %v, status %v, %d messages", r.headerErr, r.err, len(r.msgs))
	}
	if got := r.header.Get("content-disposition"); len(got) != 1 || got[0] != `attachment; filename="a\"b\\c.csv"` {
		t.Errorf("content-disposition = %q", got)
	}
}

func TestWriteAfterClose(t *testing.T) {
	r := call(t, func(s Stream) error {
		w := NewWriter(s, "text/plain", "")
		if _, err := io.WriteString(w, "x"); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "y"); !errors.Is(err, errClosed) {
			return status.Errorf(codes.Internal, "write after close: %v", err)
		}
		return nil
	})
	if r.err != nil || string(r.body()) != "x" {
		t.Fatalf("status %v, body %q", r.err, r.body())
	}
}
