package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// One connection carries responses of every framing in turn, and a refused
// status or a closing server is reported.
func TestHTTPConnFraming(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"a":1}`)) })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = w.Write([]byte(strings.Repeat("x", 5000)))
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte("tail"))
		w.Header().Set("X-Sum", "1")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/refused", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("bye"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	req := func(path string) []byte { return []byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n") }

	var c httpConn
	var first any
	for i, path := range []string{"/length", "/chunked", "/length", "/empty", "/chunked", "/length"} {
		err := c.get(addr, req(path))
		if path == "/empty" {
			if err == nil || !strings.Contains(err.Error(), "204") {
				t.Fatalf("%d %s: %v", i, path, err)
			}
		} else if err != nil {
			t.Fatalf("%d %s: %v", i, path, err)
		}
		if i == 0 {
			first = c.conn
		} else if c.conn != first {
			t.Fatalf("%d %s: a new connection", i, path)
		}
	}
	if err := c.get(addr, req("/refused")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("refused: %v", err)
	}
	if c.conn != first {
		t.Fatal("a whole error response closed the connection")
	}
	if err := c.get(addr, req("/close")); err != nil {
		t.Fatal(err)
	}
	if c.conn != nil {
		t.Fatal("Connection: close kept the connection")
	}
	if err := c.get(addr, req("/length")); err != nil {
		t.Fatalf("after close: %v", err)
	}
}
