package server

import (
	"net/http"
	"net/http/pprof"
)

// WithPprof returns h with net/http/pprof's handlers under /debug/pprof/,
// for the operators' listener of a process started with profiling on
// (ECHOPILOT_PPROF): profiles show what requests cost, so never expose it
// where tenants can reach.
func WithPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
