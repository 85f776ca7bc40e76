// Command mixload runs mixed REST traffic (every service's main paths,
// reads and writes) through the gateway of a fresh local stack of real
// binaries, at a fixed concurrency for a fixed time, and prints requests/s,
// p50/p99 and errors per path, and each process's memory before and after.
// It fails when any request fails.
//
//	go run ./e2e/cmd/mixload -duration 60s -concurrency 16
//	ECHOPILOT_DATABASE_URL=postgres://… go run ./e2e/cmd/mixload   (PostgreSQL)
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/mixload"
	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mixload:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 60*time.Second, "measured time")
	warmup := flag.Duration("warmup", 5*time.Second, "unmeasured time first")
	conc := flag.Int("concurrency", 16, "concurrent requests")
	flag.Parse()
	ctx := context.Background()

	tmp, err := os.MkdirTemp("", "echopilot-mixload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	pkgs := devstack.Packages()
	if err := devstack.Build(ctx, ".", bin, pkgs...); err != nil {
		return err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret, stripeSecret := hex.EncodeToString(raw), "whsec_mixload"
	opt := devstack.Options{BinDir: bin, DataDir: filepath.Join(tmp, "data"), Secret: secret, AuthMode: "required",
		Env: []string{"ECHOPILOT_LOG_LEVEL=warn", "ECHOPILOT_STRIPE_WEBHOOK_SECRET=" + stripeSecret}}
	backend := "SQLite"
	if admin := os.Getenv("ECHOPILOT_DATABASE_URL"); admin != "" {
		backend = "PostgreSQL"
		suffix := hex.EncodeToString(raw[:4])
		urls := map[string][2]string{}
		for _, s := range devstack.Services() {
			m, a, err := store.Provision(ctx, admin, "echopilot_load_"+s.Name+"_"+suffix, "echopilot_load_"+s.Name+"_"+suffix, secret)
			if err != nil {
				return err
			}
			urls[s.Name] = [2]string{a, m}
		}
		opt.Database = func(svc string) (string, string) { return urls[svc][0], urls[svc][1] }
	}
	st, err := devstack.Up(ctx, opt)
	if err != nil {
		return err
	}
	defer st.Down()
	mint := func(tenant, role string) (string, error) {
		return identity.MintHS256([]byte(secret), identity.Claims{Subject: "load-" + tenant, TenantID: tenant, Roles: []string{role}}, time.Hour)
	}
	stack := mixload.Stack{GatewayURL: st.GatewayURL, StripeSecret: stripeSecret}
	if stack.UserToken, err = mint("acme", "user"); err != nil {
		return err
	}
	if stack.AdminToken, err = mint("default", "admin"); err != nil {
		return err
	}

	fmt.Printf("mixed REST traffic through the gateway, %s, HS256 tokens, concurrency %d, %v (after %v warm-up)\n",
		backend, *conc, *duration, *warmup)
	mixload.Run(ctx, stack, *conc, *warmup)
	before := rss(st)
	rep := mixload.Run(ctx, stack, *conc, *duration)
	after := rss(st)
	fmt.Print(rep)
	fmt.Printf("\n%-10s %12s %12s\n", "process", "RSS before", "RSS after")
	names := make([]string, 0, len(before))
	for n := range before {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("%-10s %10.1f MB %10.1f MB\n", n, float64(before[n])/1e6, float64(after[n])/1e6)
	}
	if _, errs := rep.Requests(); errs > 0 {
		return fmt.Errorf("%d requests failed", errs)
	}
	return nil
}

func rss(st *devstack.Stack) map[string]int64 {
	out := map[string]int64{}
	for name, p := range st.Procs {
		if v, err := mixload.RSS(p.Pid()); err == nil {
			out[name] = v
		}
	}
	return out
}
