// Package app assembles the finops service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/outbox"
	"github.com/echopilot/echopilot/platform/service"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/grpcapi"
	"github.com/echopilot/echopilot/services/finops/internal/pricing"
	"github.com/echopilot/echopilot/services/finops/internal/store"
	"github.com/echopilot/echopilot/services/finops/internal/stripe"
)

// Spec returns the finops service for service.Run.
func Spec() service.Spec {
	var (
		stripeSecrets  string
		priceFile      string
		computePerDay  string
		databasePerDay string
		repriceEvery   time.Duration
		priceCheck     time.Duration
		alertEvery     time.Duration
		anomalyK       string
		auditAddr      string
	)
	return service.Spec{
		Name:        "finops",
		GRPCAddr:    ":9102",
		MetricsAddr: ":9202",
		Migrations:  store.Migrations,
		// Alerts reach the audit log through the outbox.
		ExtraMigrations: []pstore.Migrations{outbox.Migrations},
		Flags: func(l *config.Loader) {
			l.Secret(&stripeSecrets, "stripe-webhook-secret", "ECHOPILOT_STRIPE_WEBHOOK_SECRET",
				"Stripe webhook signing secrets (whsec_...), comma-separated while rotating; empty refuses every webhook")
			l.String(&priceFile, "price-file", "ECHOPILOT_PRICE_FILE", "",
				"JSON price table of AI models (see services/finops/internal/pricing); empty uses the built-in table")
			l.String(&computePerDay, "compute-cost-per-day", "ECHOPILOT_COMPUTE_COST_PER_DAY", "0.50",
				"infrastructure rate card: compute cost per day in dollars")
			l.String(&databasePerDay, "database-cost-per-day", "ECHOPILOT_DATABASE_COST_PER_DAY", "0.10",
				"infrastructure rate card: database cost per day in dollars")
			l.Duration(&repriceEvery, "reprice-interval", "ECHOPILOT_REPRICE_INTERVAL", 10*time.Minute,
				"how often unpriced usage is priced again with the current price table (also at start and when the price file changes); 0 only at start")
			l.Duration(&priceCheck, "price-file-check", "ECHOPILOT_PRICE_FILE_CHECK", 30*time.Second,
				"how often the price file is checked for changes (re-read and re-priced when changed); 0 never")
			l.Duration(&alertEvery, "alert-interval", "ECHOPILOT_FINOPS_ALERT_INTERVAL", 15*time.Minute,
				"how often budgets are evaluated and daily anomalies detected (idempotent on every replica); 0 never")
			l.String(&anomalyK, "anomaly-k", "ECHOPILOT_FINOPS_ANOMALY_K", "3",
				"a day's cost or margin is an anomaly beyond this many standard deviations from its trailing 14-day mean")
			l.String(&auditAddr, "audit-addr", "ECHOPILOT_AUDIT_ADDR", "",
				"audit gRPC address that alerts are delivered to, each an entry of its tenant's log (empty: events wait in the outbox)")
		},
		TenantData: func(*service.Runtime) tenantdata.Rules { return tenantDataRules },
		Setup: func(ctx context.Context, rt *service.Runtime) error {
			var (
				prices domain.Pricer = pricing.Default()
				file   *pricing.File
			)
			if priceFile != "" {
				var err error
				if file, err = pricing.LoadFile(priceFile); err != nil {
					return fmt.Errorf("price file: %w", err)
				}
				prices = file
			}
			rate, err := pricing.ParseRateCard(computePerDay, databasePerDay)
			if err != nil {
				return fmt.Errorf("rate card: %w", err)
			}
			dec, err := newStripeDecoder(stripeSecrets)
			if err != nil {
				return err
			}
			tenancy, err := rt.DialPeer(rt.Config.TenancyAddr)
			if err != nil {
				return fmt.Errorf("tenancy: %w", err)
			}
			rt.Go("close-tenancy", func(ctx context.Context) error { <-ctx.Done(); return tenancy.Close() })
			k, err := strconv.ParseFloat(anomalyK, 64)
			if err != nil || !(k > 0) || math.IsInf(k, 0) {
				return fmt.Errorf("anomaly-k %q: want a number above 0", anomalyK)
			}
			relay, err := rt.StartRelay(ctx, auditAddr, AuditRecorder, outbox.Options{Topics: []string{domain.TopicAlert}})
			if err != nil {
				return err
			}
			alerts := newAlertsCounter(rt.Server.Registry)
			svc := domain.NewService(store.New(rt.DB), domain.Config{Prices: prices, Rate: rate, Stripe: dec,
				Tenants: tenantRegistry{tenancyv1.NewTenancyServiceClient(tenancy)}, AnomalyK: k,
				OnAlert: func(a domain.Alert) { alerts.WithLabelValues(a.Kind).Inc(); relay.Kick() }})
			grpcapi.New(svc).Register(rt.GRPC())
			startRepricing(rt, svc, file, repriceEvery, priceCheck)
			if alertEvery > 0 {
				rt.Every("alerts", alertEvery, func(ctx context.Context) error { return evaluate(ctx, rt, svc) })
			}
			return nil
		},
	}
}

// startRepricing prices unpriced usage again at start, every interval
// (when above 0), and when the price file changes (checked every check),
// so usage of a model the table did not know is priced once a price
// covering it is added. Replicas may all run it: it is idempotent.
func startRepricing(rt *service.Runtime, svc *domain.Service, file *pricing.File, interval, check time.Duration) {
	reprice := func(ctx context.Context) error {
		n, err := svc.Reprice(ctx)
		if n > 0 {
			rt.Log.Info("priced stored usage", zap.Int64("records", n))
		}
		return err
	}
	if interval > 0 {
		rt.Every("reprice", interval, reprice)
	} else {
		rt.Go("reprice", reprice)
	}
	if file == nil || check <= 0 {
		return
	}
	rt.Every("price-file", check, func(ctx context.Context) error {
		changed, err := file.Reload()
		if err != nil || !changed {
			return err
		}
		rt.Log.Info("price file changed", zap.Int("entries", file.Table().Len()))
		return reprice(ctx)
	})
}

// newAlertsCounter registers echopilot_finops_alerts_total{kind}. Each
// alert is counted by the replica that recorded it, so a sum over replicas
// counts it once.
func newAlertsCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "echopilot_finops_alerts_total",
		Help: "Finops alerts recorded: budget crossings and daily cost or margin anomalies.",
	}, []string{"kind"})
	for _, k := range []string{domain.AlertBudget, domain.AlertAnomaly} {
		c.WithLabelValues(k)
	}
	reg.MustRegister(c)
	return c
}

// evaluate runs the budget evaluator and the anomaly detector once.
func evaluate(ctx context.Context, rt *service.Runtime, svc *domain.Service) error {
	b, err := svc.EvaluateBudgets(ctx)
	if err != nil {
		return err
	}
	a, err := svc.DetectAnomalies(ctx)
	if n := len(a) + len(b); n > 0 {
		rt.Log.Info("finops alerts recorded", zap.Int("budget", len(b)), zap.Int("anomaly", len(a)))
	}
	return err
}

// tenantRegistry asks tenancy whether a tenant is registered, with this
// service's identity acting for that tenant.
type tenantRegistry struct {
	c tenancyv1.TenancyServiceClient
}

func (r tenantRegistry) Exists(ctx context.Context, tenant string) (bool, error) {
	_, err := r.c.GetTenant(ctx, &tenancyv1.GetTenantRequest{TenantId: tenant})
	if status.Code(err) == codes.NotFound {
		return false, nil
	}
	return err == nil, err
}

// stripeDecoder checks the signature before it parses anything.
type stripeDecoder struct{ v *stripe.Verifier }

func newStripeDecoder(secrets string) (stripeDecoder, error) {
	if secrets == "" {
		return stripeDecoder{}, nil
	}
	s, err := stripe.ParseSecrets(secrets)
	if err != nil {
		return stripeDecoder{}, fmt.Errorf("stripe webhook secret: %w", err)
	}
	return stripeDecoder{v: &stripe.Verifier{Secrets: s}}, nil
}

func (d stripeDecoder) Decode(payload []byte, signature string) (domain.PaymentEvent, bool, error) {
	if d.v == nil {
		return domain.PaymentEvent{}, false, apierr.FailedPrecondition("STRIPE_NOT_CONFIGURED",
			"no Stripe webhook secret is configured (ECHOPILOT_STRIPE_WEBHOOK_SECRET)").InDomain(domain.Domain)
	}
	if _, err := d.v.Verify(payload, signature); err != nil {
		return domain.PaymentEvent{}, false, err
	}
	return stripe.ParseEvent(payload)
}
