// Package app assembles the growth service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/grpcapi"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// Spec returns the growth service for service.Run.
func Spec() service.Spec {
	var (
		defaultCommission string
		landingURL        string
		window            time.Duration
	)
	return service.Spec{
		Name:        "growth",
		GRPCAddr:    ":9105",
		MetricsAddr: ":9205",
		Migrations:  store.Migrations,
		Flags: func(l *config.Loader) {
			l.String(&defaultCommission, "growth-default-commission", "ECHOPILOT_GROWTH_DEFAULT_COMMISSION", "0.20",
				"commission rate of campaigns without one of their own, 0 to 1 with at most four decimals")
			l.String(&landingURL, "growth-landing-url", "ECHOPILOT_GROWTH_LANDING_URL", "https://example.com/",
				"absolute http(s) URL referral clicks land on, for campaigns without one of their own")
			l.Duration(&window, "growth-attribution-window", "ECHOPILOT_GROWTH_ATTRIBUTION_WINDOW", 720*time.Hour,
				"lifetime of the attribution cookie a referral click sets")
		},
		Setup: func(_ context.Context, rt *service.Runtime) error {
			bps, err := domain.ParseDefaultRate(defaultCommission)
			if err != nil {
				return err
			}
			svc, err := domain.NewService(store.New(rt.DB), domain.Config{
				DefaultRateBPS:    bps,
				DefaultLandingURL: landingURL,
				AttributionWindow: window,
				NewEventID:        func() string { return "click_" + ulid.Make().String() },
			})
			if err != nil {
				return fmt.Errorf("growth: %w", err)
			}
			grpcapi.New(svc).Register(rt.GRPC())
			return nil
		},
	}
}
