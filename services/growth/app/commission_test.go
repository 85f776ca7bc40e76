package app_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	growthv1 "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
)

// Commissions and payout batches over gRPC, as the gateway reaches them:
// the default hold keeps a new commission pending; with no hold a batch
// takes it and is paid once; other tenants neither see nor pay it; bad
// filters are refused.
func TestCommissionsAndPayouts(t *testing.T) {
	backends(t, func(t *testing.T, c growthv1.GrowthServiceClient) {
		acme := as(t, "acme", "user")
		code := create(t, c, acme, "ann", "default").GetReferralCode()
		mustEvent(t, c, acme, conversion("c1", code, "cust", 100))
		list, err := c.ListCommissions(acme, &growthv1.ListCommissionsRequest{})
		if err != nil || len(list.GetCommissions()) != 1 {
			t.Fatalf("commissions = %v, %v", list, err)
		}
		cm := list.GetCommissions()[0]
		if cm.GetState() != "pending" || cm.GetCommission() != 20 || cm.GetRevenue() != 100 || cm.GetConversionId() != "c1" ||
			cm.GetHoldUntil().AsTime().Sub(cm.GetOccurredAt().AsTime()).Hours() != 14*24 || cm.GetBatchId() != "" || cm.GetPaidAt() != nil {
			t.Errorf("a new commission = %v, want pending for 14 days", cm)
		}
		_, err = c.CreatePayoutBatch(acme, &growthv1.CreatePayoutBatchRequest{})
		wantErr(t, err, codes.FailedPrecondition, "PAYOUT_EMPTY")
	})
	backendsWith(t, []string{"--commission-hold=0s"}, func(t *testing.T, c growthv1.GrowthServiceClient) {
		acme, globex := as(t, "acme", "user"), as(t, "globex", "user")
		code := create(t, c, acme, "ann", "default").GetReferralCode()
		mustEvent(t, c, acme, conversion("c1", code, "cust", 100))
		mustEvent(t, c, acme, conversion("c2", code, "cust", 10))
		mustEvent(t, c, acme, refundOf("r2", "c2"))

		_, body, _, err := export(acme, c, &growthv1.ExportPayoutsRequest{})
		if want := code + ",ann,default,0,1,100.00,20.00\n"; err != nil || !strings.HasSuffix(string(body), want) || strings.Count(string(body), "\n") != 2 {
			t.Fatalf("approved export = %q, %v; want the row %q", body, err, want)
		}
		_, body, _, err = export(acme, c, &growthv1.ExportPayoutsRequest{State: "refunded"})
		if err != nil || !strings.HasSuffix(string(body), code+",ann,default,0,1,0.00,0.00\n") {
			t.Fatalf("refunded export = %q, %v", body, err)
		}
		for _, bad := range []string{"bogus", "PAID", "all "} {
			_, _, _, err = export(acme, c, &growthv1.ExportPayoutsRequest{State: bad})
			wantErr(t, err, codes.InvalidArgument, "COMMISSION_STATE_INVALID")
			_, err = c.ListCommissions(acme, &growthv1.ListCommissionsRequest{State: bad})
			wantErr(t, err, codes.InvalidArgument, "COMMISSION_STATE_INVALID")
		}

		created, err := c.CreatePayoutBatch(acme, &growthv1.CreatePayoutBatchRequest{})
		b := created.GetBatch()
		if err != nil || b.GetBatchId() == "" || b.GetCommissionCount() != 1 || b.GetPayout() != 20 || b.GetPaidAt() != nil {
			t.Fatalf("batch = %v, %v", created, err)
		}
		_, body, _, err = export(acme, c, &growthv1.ExportPayoutsRequest{BatchId: b.GetBatchId()})
		if err != nil || !strings.HasSuffix(string(body), code+",ann,default,0,1,100.00,20.00\n") {
			t.Fatalf("batch export = %q, %v", body, err)
		}

		// Another tenant: its own view is empty, acme's batch is unknown
		// to it, and naming acme is refused.
		_, err = c.MarkPayoutPaid(globex, &growthv1.MarkPayoutPaidRequest{BatchId: b.GetBatchId()})
		wantErr(t, err, codes.NotFound, "PAYOUT_BATCH_NOT_FOUND")
		if l, err := c.ListCommissions(globex, &growthv1.ListCommissionsRequest{}); err != nil || len(l.GetCommissions()) != 0 {
			t.Fatalf("globex's commissions = %v, %v", l, err)
		}
		foreign := metadata.AppendToOutgoingContext(globex, "x-tenant-id", "acme")
		_, err = c.MarkPayoutPaid(foreign, &growthv1.MarkPayoutPaidRequest{BatchId: b.GetBatchId()})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.ListCommissions(globex, &growthv1.ListCommissionsRequest{TenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.CreatePayoutBatch(foreign, &growthv1.CreatePayoutBatchRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		// A platform admin reads acme's commissions but pays nothing of it.
		admin := metadata.AppendToOutgoingContext(as(t, "default", "admin"), "x-tenant-id", "acme")
		if l, err := c.ListCommissions(admin, &growthv1.ListCommissionsRequest{State: "approved"}); err != nil || len(l.GetCommissions()) != 1 {
			t.Fatalf("admin reading acme's approved commissions = %v, %v", l, err)
		}
		_, err = c.MarkPayoutPaid(admin, &growthv1.MarkPayoutPaidRequest{BatchId: b.GetBatchId()})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		_, err = c.MarkPayoutPaid(acme, &growthv1.MarkPayoutPaidRequest{})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")

		paid, err := c.MarkPayoutPaid(acme, &growthv1.MarkPayoutPaidRequest{BatchId: b.GetBatchId()})
		if err != nil || !paid.GetChanged() || paid.GetBatch().GetPaidCount() != 1 || paid.GetBatch().GetPaidPayout() != 20 || paid.GetBatch().GetPaidAt() == nil {
			t.Fatalf("paid = %v, %v", paid, err)
		}
		again, err := c.MarkPayoutPaid(acme, &growthv1.MarkPayoutPaidRequest{BatchId: b.GetBatchId()})
		if err != nil || again.GetChanged() || !again.GetBatch().GetPaidAt().AsTime().Equal(paid.GetBatch().GetPaidAt().AsTime()) {
			t.Fatalf("paid again = %v, %v", again, err)
		}
		l, err := c.ListCommissions(acme, &growthv1.ListCommissionsRequest{State: "paid"})
		if err != nil || len(l.GetCommissions()) != 1 || l.GetCommissions()[0].GetBatchId() != b.GetBatchId() {
			t.Fatalf("paid commissions = %v, %v", l, err)
		}
		_, err = event(c, acme, refundOf("r1", "c1"))
		wantErr(t, err, codes.FailedPrecondition, "COMMISSION_ALREADY_PAID")
		_, err = c.ListCommissions(t.Context(), &growthv1.ListCommissionsRequest{})
		wantErr(t, err, codes.Unauthenticated, "TOKEN_MISSING")
	})
}

func refundOf(id, conversion string) *growthv1.Event {
	return &growthv1.Event{EventId: id, Type: "refund", RefundOf: conversion}
}
