// Package app assembles the audit service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/grpcapi"
	"github.com/echopilot/echopilot/services/audit/internal/intake"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/outbound"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// keyName names the checkpoint signing key in signed notes.
const keyName = "echopilot-audit"

// Spec returns the audit service for service.Run.
func Spec() service.Spec {
	var signingKey, signingKeyFile, defaultSecrets, previousKeys, outboundAllow string
	var maxAttempts, maxSecrets, maxEndpoints, scrubChunk, retentionSegment int
	var retryBase, retryCap, deliveryTimeout, scrubInterval, retentionMin, autoDisable time.Duration
	var scrubShare string
	var svc *domain.Service // built by Setup, erased through by TenantData's hook
	return service.Spec{
		Name:            "audit",
		GRPCAddr:        ":9103",
		MetricsAddr:     ":9203",
		Migrations:      store.Migrations,
		ExtraMigrations: []pstore.Migrations{outbox.Migrations},
		Flags: func(l *config.Loader) {
			l.Int(&maxAttempts, "webhook-max-attempts", "ECHOPILOT_WEBHOOK_MAX_ATTEMPTS", 8,
				"deliveries of an outbound webhook tried before it is dead-lettered")
			l.Duration(&retryBase, "webhook-retry-base", "ECHOPILOT_WEBHOOK_RETRY_BASE", 5*time.Second,
				"wait before the first retry of a failed delivery; doubles per attempt, with jitter")
			l.Duration(&retryCap, "webhook-retry-cap", "ECHOPILOT_WEBHOOK_RETRY_CAP", 10*time.Minute,
				"longest wait between retries of a delivery")
			l.Duration(&deliveryTimeout, "webhook-timeout", "ECHOPILOT_WEBHOOK_TIMEOUT", 10*time.Second,
				"how long a receiver has to answer one delivery")
			l.Duration(&autoDisable, "webhook-auto-disable-after", "ECHOPILOT_WEBHOOK_AUTO_DISABLE_AFTER", outbound.DefaultAutoDisableAfter,
				"disable a webhook endpoint whose every delivery failed for this long, noting it in the tenant's audit log (0: never)")
			l.String(&outboundAllow, "outbound-allow", "ECHOPILOT_OUTBOUND_ALLOW", "",
				"CIDRs and host names that webhook endpoints may reach although they are not public, comma-separated (e.g. 127.0.0.1/32,receiver.internal); everything else private is refused")
			l.Secret(&signingKey, "signing-key", "ECHOPILOT_AUDIT_SIGNING_KEY",
				"Ed25519 note signing key of the checkpoints (PRIVATE+KEY+…; `audit keygen` makes one)")
			l.String(&signingKeyFile, "signing-key-file", "ECHOPILOT_AUDIT_SIGNING_KEY_FILE", "",
				"file holding the signing key; created with a new key on first start when missing (local runs)")
			l.String(&previousKeys, "previous-verifier-keys", "ECHOPILOT_AUDIT_PREVIOUS_VERIFIER_KEYS", "",
				"verifier keys of earlier signing keys, comma-separated: the checkpoints they signed still verify after a key change")
			l.Int(&maxSecrets, "max-webhook-secrets", "ECHOPILOT_AUDIT_MAX_WEBHOOK_SECRETS", intake.DefaultMaxWebhookSecrets,
				"active compliance webhook secrets a tenant may hold (1 to 100); also the secrets a delivery is checked against")
			l.Int(&maxEndpoints, "max-endpoints", "ECHOPILOT_AUDIT_MAX_ENDPOINTS", outbound.DefaultMaxEndpoints,
				"active outbound webhook endpoints a tenant may register (1 to 1000)")
			l.Duration(&scrubInterval, "scrub-interval", "ECHOPILOT_AUDIT_SCRUB_INTERVAL", time.Hour,
				"how often the scrubber re-verifies every tenant's whole log, tenants spread over the interval (0 disables it)")
			l.String(&scrubShare, "scrub-cpu-share", "ECHOPILOT_AUDIT_SCRUB_CPU_SHARE", "0.25",
				"share of one core the scrubber may use (0 < share <= 1): it sleeps in proportion to the time it verifies")
			l.Int(&scrubChunk, "scrub-chunk", "ECHOPILOT_AUDIT_SCRUB_CHUNK", domain.DefaultScrubChunk,
				"entries the scrubber verifies per read transaction before it pauses")
			l.Int(&retentionSegment, "retention-segment", "ECHOPILOT_AUDIT_RETENTION_SEGMENT", domain.DefaultRetentionSegment,
				"entries retention deletes at a time, a power of two: a tenant's log is cut only at multiples of it")
			l.Duration(&retentionMin, "retention-min", "ECHOPILOT_AUDIT_RETENTION_MIN", domain.DefaultMinRetention,
				"the shortest retention a platform admin may give a tenant")
			l.Secret(&defaultSecrets, "compliance-webhook-secret", "ECHOPILOT_COMPLIANCE_WEBHOOK_SECRET",
				"compliance webhook secrets of the default tenant, comma-separated (local runs; tenants manage theirs through the API)")
		},
		Setup: func(_ context.Context, rt *service.Runtime) error {
			if maxAttempts < 1 || retryBase <= 0 || retryCap < retryBase || deliveryTimeout <= 0 || autoDisable < 0 {
				return errors.New("webhook delivery: want max attempts >= 1, 0 < retry base <= retry cap, timeout > 0, auto-disable >= 0")
			}
			if maxSecrets < 1 || maxEndpoints < 1 {
				return errors.New("caps: want max webhook secrets >= 1 and max endpoints >= 1")
			}
			if retentionSegment < 1 || retentionMin < time.Second {
				return errors.New("retention: want a segment >= 1 (a power of two) and a minimum of at least 1s")
			}
			share, err := strconv.ParseFloat(scrubShare, 64)
			if err != nil || !(share > 0 && share <= 1) || scrubInterval < 0 || scrubChunk < 1 {
				return errors.New("scrubber: want 0 < cpu share <= 1, interval >= 0 and chunk >= 1")
			}
			allow, err := netguard.ParseAllowList(outboundAllow)
			if err != nil {
				return err
			}
			if !allow.Empty() {
				rt.Log.Info("webhook endpoints may reach these non-public destinations", zap.Stringer("outbound_allow", allow))
			}
			signer, vkey, err := loadKey(signingKey, signingKeyFile, rt.Log)
			if err != nil {
				return err
			}
			var relay *outbox.Relay
			m := newMetrics(rt.Server.Registry)
			st := store.New(rt.DB)
			svc, err = domain.NewService(st, domain.Config{
				Signer: signer, VerifierKey: vkey, PreviousVerifierKeys: config.List(previousKeys),
				Events:    outbound.Events,
				Retention: domain.RetentionConfig{Segment: uint64(retentionSegment), MinAge: retentionMin},
				Hooks:     m.ledgerHooks(func() { relay.Kick() }),
			})
			if err != nil {
				return err
			}
			in, err := intake.NewService(st, svc, intake.Config{
				DefaultTenantSecrets: config.List(defaultSecrets),
				MaxWebhookSecrets:    maxSecrets,
			})
			if err != nil {
				return err
			}
			out, err := outbound.NewService(st, outbound.Config{
				Guard: &netguard.Guard{Allow: allow}, Timeout: deliveryTimeout, MaxAttempts: maxAttempts,
				MaxEndpoints: maxEndpoints, AutoDisableAfter: autoDisable, Ledger: svc,
				Hooks: m.outboundHooks(func() { relay.Kick() }), TenantActive: rt.TenantActive,
			})
			if err != nil {
				return err
			}
			// The claim lease is what deliveries held by a replica that died
			// wait before another takes them: a few delivery timeouts, not
			// the outbox's default minute.
			publish := deliveryTimeout + time.Second
			relay = outbox.NewRelay(rt.DB, out.Deliver, rt.Log, rt.Server.Registry, outbox.Options{
				MaxAttempts: maxAttempts, BaseDelay: retryBase, MaxDelay: retryCap,
				PublishTimeout: publish, Lease: 3 * publish, Topics: []string{outbound.TopicWebhook},
			})
			rt.Go("webhook-relay", relay.Run)
			if scrubInterval > 0 {
				rt.Every("audit-scrub", scrubInterval, scrubber(svc, domain.ScrubConfig{
					Interval: scrubInterval, CPUShare: share, Chunk: uint64(scrubChunk)}, m, rt.Log))
			}
			grpcapi.New(svc, in, out, &outbox.AdminServer{DB: rt.DB, Kick: relay.Kick}).Register(rt.GRPC())
			return nil
		},
		TenantData: func(*service.Runtime) tenantdata.Rules { return tenantDataRules(svc) },
	}
}

// Keygen writes a new checkpoint signing key and its verifier key, for
// ECHOPILOT_AUDIT_SIGNING_KEY and for whoever checks checkpoints.
func Keygen(w io.Writer) error {
	skey, vkey, err := ledger.NewKey(keyName)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "ECHOPILOT_AUDIT_SIGNING_KEY=%s\n# verifier key (public): %s\n", skey, vkey)
	return err
}

// loadKey reads the signing key from the flag or the file, creating the
// file with a new key when it does not exist yet. The verifier key is
// logged: it is public, and what outsiders check checkpoints with.
func loadKey(key, file string, log *zap.Logger) (note.Signer, string, error) {
	if key == "" && file != "" {
		b, err := os.ReadFile(file)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			skey, _, err := ledger.NewKey(keyName)
			if err != nil {
				return nil, "", err
			}
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				return nil, "", fmt.Errorf("signing key file: %w", err)
			}
			if err := os.WriteFile(file, []byte(skey+"\n"), 0o600); err != nil {
				return nil, "", fmt.Errorf("signing key file: %w", err)
			}
			key = skey
			log.Info("created a checkpoint signing key", zap.String("file", file))
		case err != nil:
			return nil, "", fmt.Errorf("signing key file: %w", err)
		default:
			key = strings.TrimSpace(string(b))
		}
	}
	if key == "" {
		return nil, "", errors.New("audit needs a checkpoint signing key: set ECHOPILOT_AUDIT_SIGNING_KEY or ECHOPILOT_AUDIT_SIGNING_KEY_FILE")
	}
	signer, err := note.NewSigner(key)
	if err != nil {
		return nil, "", fmt.Errorf("signing key: %w", err)
	}
	vkey, err := verifierKey(key)
	if err != nil {
		return nil, "", err
	}
	log.Info("checkpoints are signed", zap.String("verifier_key", vkey))
	return signer, vkey, nil
}

// verifierKey derives the public note verifier key of a note signing key
// ("PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the Ed25519 seed>").
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("signing key: not a note private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("signing key: not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// scrubber is one pass of the scrubber over every tenant's log, spread over
// cfg.Interval and kept to cfg.CPUShare of a core; a log found bad is logged with its
// first bad entry (and counted, and sticks for every read of the tenant
// until a full verification passes).
func scrubber(svc *domain.Service, cfg domain.ScrubConfig, m *metrics, log *zap.Logger) func(context.Context) error {
	cfg.Result = func(tenant string, v domain.Verification) {
		if !v.Valid {
			log.Error("audit log verification failed: the log was tampered with or damaged",
				zap.String("tenant_id", tenant), zap.Uint64("first_invalid_seq", v.FirstBad), zap.String("reason", v.Reason))
		}
	}
	cfg.Retained = func(tenant string, deleted uint64, err error) {
		if deleted > 0 {
			m.retained.Add(float64(deleted))
			log.Info("retention deleted old audit entries", zap.String("tenant_id", tenant), zap.Uint64("entries", deleted))
		}
		if err != nil {
			m.retentionFailures.Inc()
			log.Error("audit retention failed; nothing more was deleted", zap.String("tenant_id", tenant), zap.Error(err))
		}
	}
	return func(ctx context.Context) error {
		rep, err := svc.Scrub(ctx, cfg)
		if err != nil {
			return fmt.Errorf("scrub: %w", err)
		}
		if rep.Invalid == 0 {
			m.scrubbed.SetToCurrentTime()
		}
		log.Info("scrubbed audit logs", zap.Int("tenants", rep.Tenants), zap.Int("invalid", rep.Invalid))
		return nil
	}
}
