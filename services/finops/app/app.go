// Package app assembles the finops service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/service"
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
	)
	return service.Spec{
		Name:        "finops",
		GRPCAddr:    ":9102",
		MetricsAddr: ":9202",
		Migrations:  store.Migrations,
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
		},
		Setup: func(_ context.Context, rt *service.Runtime) error {
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
			svc := domain.NewService(store.New(rt.DB), domain.Config{Prices: prices, Rate: rate, Stripe: dec,
				Tenants: tenantRegistry{tenancyv1.NewTenancyServiceClient(tenancy)}})
			grpcapi.New(svc).Register(rt.GRPC())
			startRepricing(rt, svc, file, repriceEvery, priceCheck)
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
