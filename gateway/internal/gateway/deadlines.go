package gateway

import (
	"net/http"
	"time"
)

// withDeadlines bounds each write of a response: it must finish within
// writeTimeout of its start (0: no bound). A client that stops reading is
// dropped, while a stream that keeps producing (an export) runs as long as
// it produces, so no single timeout has to fit the longest export, as a
// server-wide http.Server.WriteTimeout would.
//
// Reading needs nothing here: the server's ReadTimeout bounds reading the
// headers and body, and net/http lifts the read deadline itself once the
// body is read, so a response may outlive ReadTimeout.
func withDeadlines(writeTimeout time.Duration, next http.Handler) http.Handler {
	if writeTimeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: writeTimeout}
		dw.renew()
		// net/http flushes what is buffered after the handler returns.
		defer dw.renew()
		next.ServeHTTP(dw, r)
	})
}

// deadlineWriter renews the connection's write deadline before each write
// and flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) renew() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.renew()
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher, which streamed responses need.
func (w *deadlineWriter) Flush() {
	w.renew()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
