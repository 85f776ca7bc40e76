package main

// The monitor (--follow): a witness of a tenant's live log. It keeps the
// last checkpoint it verified in a directory and, every round, checks that
// the service's current checkpoint is signed with the log's key and extends
// the kept one (an RFC 6962 consistency proof from the service, checked
// here). A log rolled back, forked or rewritten after the monitor saw it
// cannot pass unless the monitor's directory is rolled back too.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Files in --checkpoint-dir.
const (
	keptFile = "checkpoint"   // the last verified signed note
	keyFile  = "verifier.key" // the key pinned by --trust-on-first-use
)

// errInconsistent is follow's error when the log was found inconsistent
// with what the monitor saw before (exit 1, like an invalid export).
var errInconsistent = fmt.Errorf("%w: the log is inconsistent with the checkpoint kept", errInvalid)

func followConfig(c Config, args []string) (Config, error) {
	switch len(args) {
	case 0:
		return Config{}, &usageError{"--follow needs the gateway's base URL"}
	case 1:
	default:
		return Config{}, &usageError{fmt.Sprintf("--follow takes one URL, got %q", args)}
	}
	u, err := url.Parse(args[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Config{}, &usageError{fmt.Sprintf("--follow: %q is not an http(s) URL", args[0])}
	}
	c.URL = strings.TrimRight(args[0], "/")
	if c.AlertWebhook != "" {
		if u, err := url.Parse(c.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, &usageError{fmt.Sprintf("--alert-webhook: %q is not an http(s) URL", c.AlertWebhook)}
		}
	}
	switch {
	case c.CheckpointDir == "":
		return Config{}, &usageError{"--follow needs --checkpoint-dir (where the last verified checkpoint is kept)"}
	case c.Interval <= 0:
		return Config{}, &usageError{"--interval must be positive"}
	case c.Key == "" && !c.TrustFirstKey:
		return Config{}, &usageError{"--follow needs --key (the log's verifier key, from a source you trust), or --trust-on-first-use"}
	case len(c.Checkpoints) > 0 || c.JSON:
		return Config{}, &usageError{"--checkpoint and --json are for checking an export, not --follow"}
	}
	return c, nil
}

// monitor is one --follow run.
type monitor struct {
	cfg    Config
	client *http.Client
	out    io.Writer
	key    string // verifier key text; "" until pinned with --trust-on-first-use
}

func follow(cfg Config, stdout, stderr io.Writer) error {
	m := &monitor{cfg: cfg, out: stdout, client: &http.Client{
		Timeout: 30 * time.Second,
		// The gateway answers without redirects; following one would send
		// the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if cfg.Key != "" {
		k, err := readKey(cfg.Key)
		if err != nil {
			return err
		}
		m.key = k
	} else if b, err := os.ReadFile(filepath.Join(cfg.CheckpointDir, keyFile)); err == nil {
		m.key = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if m.key != "" {
		if _, err := note.NewVerifier(m.key); err != nil {
			return fmt.Errorf("verifier key: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.CheckpointDir, 0o700); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for {
		err := m.round(ctx)
		switch {
		case errors.Is(err, errInvalid):
			return err
		case err != nil && cfg.Once:
			return err
		case err != nil:
			fmt.Fprintln(stderr, "audit-verify: round failed, retrying at the next:", err)
		}
		if cfg.Once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Interval):
		}
	}
}

// inconsistency is what the monitor found wrong, as reported and alerted.
type inconsistency struct {
	reason   string
	kept     *ledger.Checkpoint
	received *ledger.Checkpoint
	note     []byte // the received signed note
}

// round fetches the current checkpoint, checks it against the kept one
// and keeps it. Errors wrapping errInvalid are inconsistencies (already
// reported and alerted); others are failures to check at all.
func (m *monitor) round(ctx context.Context) error {
	var resp struct {
		Checkpoint  string `json:"checkpoint"`
		VerifierKey string `json:"verifier_key"`
	}
	if err := m.get(ctx, "/api/audit/checkpoint", nil, &resp); err != nil {
		return err
	}
	if resp.Checkpoint == "" {
		return errors.New("GET /api/audit/checkpoint: no checkpoint in the answer")
	}
	signed := []byte(resp.Checkpoint)
	if m.key == "" { // --trust-on-first-use, nothing pinned yet
		if _, err := note.NewVerifier(resp.VerifierKey); err != nil {
			return fmt.Errorf("the service's verifier key %q: %w", resp.VerifierKey, err)
		}
		if err := writeAtomic(filepath.Join(m.cfg.CheckpointDir, keyFile), []byte(resp.VerifierKey+"\n")); err != nil {
			return err
		}
		m.key = resp.VerifierKey
		fmt.Fprintf(m.out, "PINNED: verifier key %s (trust on first use)\n", m.key)
	}
	verifier, err := note.NewVerifier(m.key)
	if err != nil {
		return err
	}
	kept, err := m.kept(verifier)
	if err != nil {
		return err
	}
	cp, err := ledger.Open(signed, verifier)
	if err != nil {
		return m.fail(ctx, inconsistency{reason: fmt.Sprintf("the service's checkpoint does not verify with the key %s: %v", keyLabel(m.key), err),
			kept: kept, note: signed})
	}
	got := inconsistency{kept: kept, received: &cp, note: signed}
	switch {
	case m.cfg.Tenant != "" && cp.Origin != ledger.Origin(m.cfg.Tenant):
		got.reason = fmt.Sprintf("the checkpoint is of log %q, not tenant %s's", cp.Origin, m.cfg.Tenant)
		return m.fail(ctx, got)
	case kept == nil:
		fmt.Fprintf(m.out, "OK: %s: first checkpoint, tree size %d, root %x kept\n", cp.Origin, cp.Size, cp.Root)
		return m.keep(signed)
	case cp.Origin != kept.Origin:
		got.reason = fmt.Sprintf("the checkpoint is of log %q, the one kept of %q", cp.Origin, kept.Origin)
		return m.fail(ctx, got)
	case cp.Size < kept.Size:
		got.reason = fmt.Sprintf("the tree shrank from %d to %d entries: rolled back or truncated", kept.Size, cp.Size)
		return m.fail(ctx, got)
	case cp.Size == kept.Size && !bytes.Equal(cp.Root, kept.Root):
		got.reason = fmt.Sprintf("another root at tree size %d (%x, kept %x): the log forked or was rewritten", cp.Size, cp.Root, kept.Root)
		return m.fail(ctx, got)
	case cp.Size == kept.Size:
		fmt.Fprintf(m.out, "OK: %s: tree size %d unchanged\n", cp.Origin, cp.Size)
		return nil
	}
	if kept.Size > 0 { // every tree extends the empty one
		hashes, err := m.consistencyProof(ctx, kept.Size, cp.Size)
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, kept.Size, cp.Size, hashes, kept.Root, cp.Root); err != nil {
			got.reason = fmt.Sprintf("tree %d does not extend the kept tree %d (consistency proof: %v): history before entry %d was rewritten or the log forked",
				cp.Size, kept.Size, err, kept.Size+1)
			return m.fail(ctx, got)
		}
	}
	fmt.Fprintf(m.out, "OK: %s: tree size %d, root %x, consistent with the kept %d\n", cp.Origin, cp.Size, cp.Root, kept.Size)
	return m.keep(signed)
}

// kept is the checkpoint in the directory, nil when there is none. One
// that does not verify is an error: the directory is the monitor's own.
func (m *monitor) kept(verifier note.Verifier) (*ledger.Checkpoint, error) {
	file := filepath.Join(m.cfg.CheckpointDir, keptFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cp, err := ledger.Open(b, verifier)
	if err != nil {
		return nil, fmt.Errorf("kept checkpoint %s (after a key change, move it aside): %w", file, err)
	}
	return &cp, nil
}

func (m *monitor) keep(signed []byte) error {
	return writeAtomic(filepath.Join(m.cfg.CheckpointDir, keptFile), signed)
}

func (m *monitor) consistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	var resp struct {
		Hashes []string `json:"hashes"`
	}
	q := url.Values{"from_size": {strconv.FormatUint(from, 10)}, "to_size": {strconv.FormatUint(to, 10)}}
	if err := m.get(ctx, "/api/audit/proofs/consistency", q, &resp); err != nil {
		return nil, err
	}
	out := make([][]byte, len(resp.Hashes))
	for i, h := range resp.Hashes {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("consistency proof: hash %d is not hex", i)
		}
		out[i] = b
	}
	return out, nil
}

// get fetches path from the gateway as JSON into v.
func (m *monitor) get(ctx context.Context, path string, q url.Values, v any) error {
	u := m.cfg.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if m.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+m.cfg.Token)
	}
	if m.cfg.Tenant != "" {
		req.Header.Set("X-Tenant-ID", m.cfg.Tenant)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// alert is the JSON POSTed to --alert-webhook.
type alert struct {
	Alert    string          `json:"alert"` // always "audit_log_inconsistent"
	Gateway  string          `json:"gateway"`
	Tenant   string          `json:"tenant_id,omitempty"`
	Reason   string          `json:"reason"`
	Kept     *jsonCheckpoint `json:"kept_checkpoint,omitempty"`
	Received *jsonCheckpoint `json:"received_checkpoint,omitempty"`
	Note     string          `json:"received_note"`
	Time     time.Time       `json:"time"`
}

// fail reports an inconsistency, alerts and returns errInconsistent. The
// kept checkpoint stays as it was: the next run finds the same problem.
func (m *monitor) fail(ctx context.Context, in inconsistency) error {
	fmt.Fprintf(m.out, "INCONSISTENT: %s\n", in.reason)
	a := alert{Alert: "audit_log_inconsistent", Gateway: m.cfg.URL, Tenant: m.cfg.Tenant, Reason: in.reason,
		Note: string(in.note), Time: time.Now().UTC()}
	if in.kept != nil {
		j := toJSONCheckpoint(*in.kept)
		a.Kept = &j
		if a.Tenant == "" {
			a.Tenant = strings.TrimPrefix(in.kept.Origin, ledger.OriginPrefix)
		}
	}
	if in.received != nil {
		j := toJSONCheckpoint(*in.received)
		a.Received = &j
	}
	if m.cfg.AlertWebhook != "" {
		if err := m.post(ctx, a); err != nil {
			fmt.Fprintf(m.out, "ALERT FAILED: %s: %v\n", m.cfg.AlertWebhook, err)
		}
	}
	return fmt.Errorf("%w: %s", errInconsistent, in.reason)
}

// post sends the alert. The URL is the operator's own (loopback and
// private addresses allowed): no outbound guard.
func (m *monitor) post(ctx context.Context, a alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.AlertWebhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status)
	}
	return nil
}

// writeAtomic replaces file with data: a crash leaves the old file or the
// new one, never a part of either.
func writeAtomic(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// keyLabel is a key's name and hash, without the key itself.
func keyLabel(vkey string) string {
	if i := strings.LastIndexByte(vkey, '+'); i > 0 {
		return vkey[:i]
	}
	return vkey
}
