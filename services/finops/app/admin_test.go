package app_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	finopsv1 "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	tenancyapp "github.com/echopilot/echopilot/services/tenancy/app"
)

// tenancyWith runs the real tenancy service on a loopback port with the
// tenants registered, and returns the flag that points finops at it.
func tenancyWith(t *testing.T, tenants ...string) string {
	t.Helper()
	conn := servicetest.Start(t, tenancyapp.Spec(), servicetest.Options{AuthMode: "required", TCP: true})
	c := tenancyv1.NewTenancyServiceClient(conn)
	for _, id := range tenants {
		if _, err := c.CreateTenant(admin(t), &tenancyv1.CreateTenantRequest{Tenant: &tenancyv1.Tenant{TenantId: id}}); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	return "--tenancy-addr=" + conn.Target()
}

func heldEvents(t *testing.T, c finopsv1.FinOpsServiceClient, req *finopsv1.ListHeldStripeEventsRequest) *finopsv1.ListHeldStripeEventsResponse {
	t.Helper()
	res, err := c.ListHeldStripeEvents(admin(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A platform admin lists held Stripe events and assigns their customer to
// a registered tenant, which applies them once; a tenant can do neither,
// and bad input gets its reason.
func TestHeldStripeEventsAdmin(t *testing.T) {
	tenancyFlag := tenancyWith(t, "acme", "globex")
	backendsWith(t, []string{tenancyFlag}, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		now := time.Now()
		for _, ev := range [][]byte{
			chargeEvent("evt_h_1", "charge.succeeded", "ch_h_1", 1999, 0, "", "cus_held", now),
			chargeEvent("evt_h_2", "charge.succeeded", "ch_h_2", 500, 0, "", "cus_held", now),
			chargeEvent("evt_h_3", "charge.succeeded", "ch_h_3", 100, 0, "", "cus_other", now),
		} {
			if res := mustSend(t, c, ev); res.GetOutcome() != "held" {
				t.Fatalf("%s: %v", res.GetEventId(), res)
			}
		}

		first := heldEvents(t, c, &finopsv1.ListHeldStripeEventsRequest{PageSize: 2})
		if len(first.GetEvents()) != 2 || first.GetNextPageToken() == "" {
			t.Fatalf("first page: %v", first)
		}
		e := first.GetEvents()[0]
		if e.GetEventId() != "evt_h_1" || e.GetCustomerId() != "cus_held" || e.GetType() != "charge.succeeded" ||
			e.GetAmount() != 19.99 || e.GetAmountMicros() != 19_990_000 || e.GetCurrency() != "USD" ||
			e.GetReceivedAt().AsTime().Before(now.Add(-time.Minute)) || e.GetOccurredAt().AsTime().Unix() != now.Unix() {
			t.Errorf("held event = %v", e)
		}
		second := heldEvents(t, c, &finopsv1.ListHeldStripeEventsRequest{PageSize: 2, PageToken: first.GetNextPageToken()})
		if len(second.GetEvents()) != 1 || second.GetEvents()[0].GetEventId() != "evt_h_3" || second.GetNextPageToken() != "" {
			t.Errorf("second page: %v", second)
		}
		if one := heldEvents(t, c, &finopsv1.ListHeldStripeEventsRequest{CustomerId: "cus_other"}); len(one.GetEvents()) != 1 {
			t.Errorf("cus_other's: %v", one)
		}

		// Attacks: a tenant, even an admin of its own, lists and assigns
		// nothing; nor does a platform user without the admin role, nor a
		// service.
		acmeAdmin, acmeUser := as(t, "acme", "admin"), as(t, "acme", "user")
		_, err := c.ListHeldStripeEvents(acmeUser, &finopsv1.ListHeldStripeEventsRequest{})
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = c.ListHeldStripeEvents(acmeAdmin, &finopsv1.ListHeldStripeEventsRequest{})
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = c.AssignStripeCustomer(acmeAdmin, &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "acme"})
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = c.ListHeldStripeEvents(as(t, "default", "user"), &finopsv1.ListHeldStripeEventsRequest{})
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = c.AssignStripeCustomer(servicetest.AsService(t, "queue", "acme"),
			&finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "acme"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("a service assigning: %v", err)
		}
		if s := summary(t, c, acmeUser, 7); s.GetRevenue().GetTotalRevenue() != 0 {
			t.Fatalf("refused calls applied something: %v", s.GetRevenue())
		}

		// Bad input.
		_, err = c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "nosuch"})
		wantErr(t, err, codes.NotFound, "TENANT_NOT_FOUND")
		_, err = c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "Bad Tenant"})
		wantErr(t, err, codes.InvalidArgument, "TENANT_ID_INVALID")
		_, err = c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus held", TargetTenantId: "acme"})
		wantErr(t, err, codes.InvalidArgument, "CUSTOMER_ID_INVALID")
		_, err = c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{TargetTenantId: "acme"})
		wantErr(t, err, codes.InvalidArgument, "FIELD_REQUIRED")
		_, err = c.ListHeldStripeEvents(admin(t), &finopsv1.ListHeldStripeEventsRequest{CustomerId: "cus\x00"})
		wantErr(t, err, codes.InvalidArgument, "CUSTOMER_ID_INVALID")
		_, err = c.ListHeldStripeEvents(admin(t), &finopsv1.ListHeldStripeEventsRequest{PageToken: "junk"})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("junk page token: %v", err)
		}

		// The assignment applies both held events once.
		res, err := c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "acme"})
		if err != nil || res.GetReleasedEvents() != 2 || res.GetTenantId() != "acme" {
			t.Fatalf("assign: %v, %v", res, err)
		}
		res, err = c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "acme"})
		if err != nil || res.GetReleasedEvents() != 0 {
			t.Fatalf("assign again: %v, %v", res, err)
		}
		_, err = c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_held", TargetTenantId: "globex"})
		wantErr(t, err, codes.FailedPrecondition, "CUSTOMER_ALREADY_ASSIGNED")
		if s := summary(t, c, acmeUser, 7); s.GetRevenue().GetTotalRevenue() != 24.99 || s.GetRevenue().GetPaymentCount() != 2 {
			t.Errorf("acme's revenue after assigning twice: %v", s.GetRevenue())
		}
		if left := heldEvents(t, c, &finopsv1.ListHeldStripeEventsRequest{}); len(left.GetEvents()) != 1 || left.GetEvents()[0].GetCustomerId() != "cus_other" {
			t.Errorf("still held: %v", left)
		}
	})
}

// Without tenancy reachable the assignment is unavailable, never applied
// to a tenant nobody checked.
func TestAssignWithoutTenancy(t *testing.T) {
	backendsWith(t, []string{"--tenancy-addr=127.0.0.1:1"}, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		mustSend(t, c, chargeEvent("evt_n_1", "charge.succeeded", "ch_n_1", 100, 0, "", "cus_n", time.Now()))
		_, err := c.AssignStripeCustomer(admin(t), &finopsv1.AssignStripeCustomerRequest{CustomerId: "cus_n", TargetTenantId: "acme"})
		wantErr(t, err, codes.Unavailable, "TENANCY_UNAVAILABLE")
		if left := heldEvents(t, c, &finopsv1.ListHeldStripeEventsRequest{}); len(left.GetEvents()) != 1 {
			t.Errorf("held: %v", left)
		}
	})
}

// Usage of a model the price file lacks is priced once a price covering
// its date is added to the file, without a restart.
func TestRepriceOnPriceFileChange(t *testing.T) {
	base := `{"model": "gpt-4o-mini", "effective_from": "2024-07-18", "input_per_mtok": "0.15", "output_per_mtok": "0.60"}`
	var file string
	write := func(t *testing.T, body string) {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Each backend's service starts with a file of its own, without the price.
	flags := func(t *testing.T) []string {
		file = filepath.Join(t.TempDir(), "prices.json")
		write(t, `{"prices": [`+base+`]}`)
		return []string{"--price-file=" + file, "--price-file-check=20ms"}
	}
	backendsEach(t, flags, func(t *testing.T, c finopsv1.FinOpsServiceClient) {
		if res := record(t, c, "acme", usage("n1", "new-model", 1000, 500), usage("n2", "new-model", 1000, 500)); res.GetUnpriced() != 2 {
			t.Fatalf("record: %v", res)
		}
		if u := summary(t, c, admin(t), 7).GetCosts().GetAi().GetUnpriced(); u.GetJobCount() != 2 || u.GetModels()[0] != "new-model" {
			t.Fatalf("unpriced before: %v", u)
		}
		write(t, `{"prices": [`+base+`, {"model": "new-model", "effective_from": "2025-01-01", "input_per_mtok": "0.15", "output_per_mtok": "0.60"}]}`)
		deadline := time.Now().Add(15 * time.Second)
		for {
			ai := summary(t, c, admin(t), 7).GetCosts().GetAi()
			if ai.GetUnpriced().GetJobCount() == 0 {
				if ai.GetTotalCostMicros() != 900 || ai.GetTotalCost() != 0.0009 || len(ai.GetUnpriced().GetModels()) != 0 {
					t.Errorf("after the price: %v", ai)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still unpriced: %v", ai)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Recorded again (the queue retries): still a duplicate, cost unchanged.
		record(t, c, "acme", usage("n1", "new-model", 1000, 500))
		if ai := summary(t, c, admin(t), 7).GetCosts().GetAi(); ai.GetTotalCostMicros() != 900 || ai.GetJobCount() != 2 {
			t.Errorf("after a replay: %v", ai)
		}
	})
}
