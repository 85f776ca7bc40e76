// Package app assembles the growth service. The binary runs it; tests in
// this and other modules (the gateway's, the end-to-end harness) run the
// same thing in-process.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
	"github.com/echopilot/echopilot/services/growth/internal/grpcapi"
	"github.com/echopilot/echopilot/services/growth/internal/store"
)

// visitorKeyName names the deployment key of the visitor hashes of
// referral clicks.
const visitorKeyName = "growth.click.visitor.v1"

// Spec returns the growth service for service.Run.
func Spec() service.Spec {
	var (
		defaultCommission string
		landingURL        string
		window            time.Duration
		dedupWindow       time.Duration
		maxCampaigns      int
		commissionHold    time.Duration
	)
	return service.Spec{
		Name:        "growth",
		GRPCAddr:    ":9105",
		MetricsAddr: ":9205",
		Migrations:  store.Migrations,
		Flags: func(l *config.Loader) {
			l.String(&defaultCommission, "default-commission", "ECHOPILOT_GROWTH_DEFAULT_COMMISSION", "0.20",
				"commission rate of campaigns without one of their own, 0 to 1 with at most four decimals")
			l.String(&landingURL, "landing-url", "ECHOPILOT_GROWTH_LANDING_URL", "https://example.com/",
				"absolute http(s) URL referral clicks land on, for campaigns without one of their own")
			l.Duration(&window, "attribution-window", "ECHOPILOT_GROWTH_ATTRIBUTION_WINDOW", 720*time.Hour,
				"lifetime of the attribution cookie a referral click sets")
			l.Duration(&dedupWindow, "click-dedup-window", "ECHOPILOT_GROWTH_CLICK_DEDUP_WINDOW", 30*time.Minute,
				"repeated referral clicks of one visitor on one code within this count once (0: every click counts)")
			l.Int(&maxCampaigns, "max-campaigns", "ECHOPILOT_GROWTH_MAX_CAMPAIGNS", 1000,
				"most campaigns a tenant may configure")
			l.Duration(&commissionHold, "commission-hold", "ECHOPILOT_GROWTH_COMMISSION_HOLD", domain.DefaultCommissionHold,
				"how long a new conversion's commission stays pending before it is approved for payout (0: approved at once)")
		},
		TenantData: func(*service.Runtime) tenantdata.Rules { return tenantDataRules },
		Setup: func(ctx context.Context, rt *service.Runtime) error {
			bps, err := domain.ParseDefaultRate(defaultCommission)
			if err != nil {
				return err
			}
			st := store.New(rt.DB)
			visitorKey, err := st.DeploymentKey(ctx, visitorKeyName)
			if err != nil {
				return fmt.Errorf("growth: %w", err)
			}
			svc, err := domain.NewService(st, domain.Config{
				DefaultRateBPS:    bps,
				DefaultLandingURL: landingURL,
				AttributionWindow: window,
				ClickDedupWindow:  dedupWindow,
				VisitorKey:        visitorKey,
				MaxCampaigns:      maxCampaigns,
				CommissionHold:    commissionHold,
				NewClickID:        func() string { return ulid.Make().String() },
				TenantActive:      rt.TenantActive,
			})
			if err != nil {
				return fmt.Errorf("growth: %w", err)
			}
			grpcapi.New(svc).Register(rt.GRPC())
			// A mark lives one window and at most half a window more.
			rt.Every("prune-click-marks", max(dedupWindow/2, time.Minute), func(ctx context.Context) error {
				n, err := svc.PruneClickMarks(ctx)
				if n > 0 {
					rt.Log.Info("pruned click visitor marks", zap.Int64("rows", n))
				}
				return err
			})
			return nil
		},
	}
}
