package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serveDeadlines serves h behind withDeadlines on a server with the given
// ReadTimeout, as cmd/gateway runs it.
func serveDeadlines(t *testing.T, readTimeout, writeTimeout time.Duration, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(withDeadlines(writeTimeout, h))
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// A response may take longer than ReadTimeout once the request is read: the
// request's context is not cancelled when ReadTimeout passes.
func TestReadTimeoutDoesNotCancelLongResponses(t *testing.T) {
	srv := serveDeadlines(t, 100*time.Millisecond, time.Second, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for range 4 {
			time.Sleep(100 * time.Millisecond)
			if err := r.Context().Err(); err != nil {
				http.Error(w, "cancelled: "+err.Error(), http.StatusInternalServerError)
				return
			}
			_, _ = w.Write([]byte("."))
			w.(http.Flusher).Flush()
		}
		_, _ = fmt.Fprintf(w, "alive %s", body)
	})
	for _, method := range []string{"GET", "POST"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("with body")
		}
		req, _ := http.NewRequest(method, srv.URL, body)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(got), "....alive") {
			t.Fatalf("%s: %d %q", method, resp.StatusCode, got)
		}
	}
}

// A body that trickles in is still cut off at ReadTimeout.
func TestReadTimeoutCutsSlowBodies(t *testing.T) {
	srv := serveDeadlines(t, 200*time.Millisecond, time.Second, func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "slow body", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "read it all")
	})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	start := time.Now()
	for range 20 {
		if _, err := conn.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("a body trickled over %v was read whole", time.Since(start))
	}
}

// A client that stops reading is dropped after the write timeout, while a
// stream that keeps writing may last longer than it.
func TestWriteTimeoutPerWrite(t *testing.T) {
	wrote := make(chan error, 1)
	srv := serveDeadlines(t, time.Second, 200*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			for range 8 {
				_, _ = w.Write([]byte("chunk\n"))
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		chunk := make([]byte, 1<<20)
		for {
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
	})
	resp, err := srv.Client().Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(got), "chunk") != 8 {
		t.Fatalf("stream of 800ms under a 200ms write timeout: %q, %v", got, err)
	}

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-wrote:
		if ne, ok := err.(net.Error); ok && !ne.Timeout() {
			t.Logf("write ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writes to a client that does not read never timed out")
	}
}
