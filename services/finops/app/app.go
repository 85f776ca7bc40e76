// Package app assembles the finops service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"fmt"

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
		},
		Setup: func(_ context.Context, rt *service.Runtime) error {
			prices := pricing.Default()
			if priceFile != "" {
				var err error
				if prices, err = pricing.Load(priceFile); err != nil {
					return fmt.Errorf("price file: %w", err)
				}
			}
			rate, err := pricing.ParseRateCard(computePerDay, databasePerDay)
			if err != nil {
				return fmt.Errorf("rate card: %w", err)
			}
			dec, err := newStripeDecoder(stripeSecrets)
			if err != nil {
				return err
			}
			svc := domain.NewService(store.New(rt.DB), domain.Config{Prices: prices, Rate: rate, Stripe: dec})
			grpcapi.New(svc).Register(rt.GRPC())
			return nil
		},
	}
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
