package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
)

// concurrently runs create 16 times at once and returns how many succeeded;
// every failure must be RESOURCE_EXHAUSTED with reason, the cap in the
// message and in the ErrorInfo metadata.
func concurrently(t *testing.T, reason string, limit int, create func(i int) error) int {
	t.Helper()
	const creators = 16
	var wg sync.WaitGroup
	errs := make([]error, creators)
	start := make(chan struct{})
	for i := range creators {
		wg.Go(func() {
			<-start
			errs[i] = create(i)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantErr(t, err, codes.ResourceExhausted, reason)
		st, _ := status.FromError(err)
		info, _ := st.Details()[0].(*errdetails.ErrorInfo)
		if !strings.Contains(st.Message(), fmt.Sprint(limit)) || info.GetMetadata()["limit"] != fmt.Sprint(limit) {
			t.Fatalf("refusal does not state the cap %d: %v %v", limit, st.Message(), info)
		}
	}
	return ok
}

// Finding 5: a tenant's active webhook secrets and endpoints are capped,
// under concurrency too, and both lists come a page at a time.
func TestCapsAndPages(t *testing.T) {
	const maxSecrets, maxEndpoints = 3, 4
	backends(t, func(t *testing.T, s stack) {
		acme, globex := as(t, "acme", "user"), as(t, "globex", "user")
		createSecret := func(ctx context.Context) func(int) error {
			return func(int) error {
				_, err := s.c.CreateWebhookSecret(ctx, &auditv1.CreateWebhookSecretRequest{})
				return err
			}
		}
		createEndpoint := func(ctx context.Context) func(int) error {
			return func(i int) error {
				_, err := s.c.CreateEndpoint(ctx, &auditv1.CreateEndpointRequest{Url: fmt.Sprintf("https://93.184.215.14/hooks/%d", i)})
				return err
			}
		}
		for _, ctx := range []context.Context{acme, globex} {
			if n := concurrently(t, "WEBHOOK_SECRET_LIMIT", maxSecrets, createSecret(ctx)); n != maxSecrets {
				t.Fatalf("%d of 16 concurrent secret creations succeeded, cap %d", n, maxSecrets)
			}
			if n := concurrently(t, "ENDPOINT_LIMIT", maxEndpoints, createEndpoint(ctx)); n != maxEndpoints {
				t.Fatalf("%d of 16 concurrent endpoint creations succeeded, cap %d", n, maxEndpoints)
			}
		}

		// Revoking and deleting free a slot each, once.
		secrets, err := s.c.ListWebhookSecrets(acme, &auditv1.ListWebhookSecretsRequest{})
		if err != nil || len(secrets.GetSecrets()) != maxSecrets || secrets.GetNextPageToken() != "" {
			t.Fatalf("secrets = %v, %v", secrets, err)
		}
		if _, err := s.c.RevokeWebhookSecret(acme, &auditv1.RevokeWebhookSecretRequest{SecretId: secrets.GetSecrets()[0].GetSecretId()}); err != nil {
			t.Fatal(err)
		}
		if n := concurrently(t, "WEBHOOK_SECRET_LIMIT", maxSecrets, createSecret(acme)); n != 1 {
			t.Fatalf("%d secrets created after a revocation, want 1", n)
		}
		eps, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{})
		if err != nil || len(eps.GetEndpoints()) != maxEndpoints {
			t.Fatalf("endpoints = %v, %v", eps, err)
		}
		if _, err := s.c.DeleteEndpoint(acme, &auditv1.DeleteEndpointRequest{EndpointId: eps.GetEndpoints()[1].GetEndpointId()}); err != nil {
			t.Fatal(err)
		}
		if n := concurrently(t, "ENDPOINT_LIMIT", maxEndpoints, createEndpoint(acme)); n != 1 {
			t.Fatalf("%d endpoints created after a deletion, want 1", n)
		}

		// Pages: the secrets (revoked one included) two at a time, the
		// endpoints three at a time, each id once, oldest first.
		ids, created := pages(t, func(token string) (page, error) {
			p, err := s.c.ListWebhookSecrets(acme, &auditv1.ListWebhookSecretsRequest{PageSize: 2, PageToken: token})
			var out page
			for _, sec := range p.GetSecrets() {
				out.ids, out.created = append(out.ids, sec.GetSecretId()), append(out.created, sec.GetCreateTime().AsTime().UnixMicro())
			}
			out.next = p.GetNextPageToken()
			return out, err
		})
		if len(ids) != maxSecrets+1 || ids[0] != secrets.GetSecrets()[0].GetSecretId() || !unique(ids) || !ascending(created) {
			t.Fatalf("secret pages gave %v", ids)
		}
		ids, created = pages(t, func(token string) (page, error) {
			p, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{PageSize: 3, PageToken: token})
			var out page
			for _, ep := range p.GetEndpoints() {
				out.ids, out.created = append(out.ids, ep.GetEndpointId()), append(out.created, ep.GetCreateTime().AsTime().UnixMicro())
			}
			out.next = p.GetNextPageToken()
			return out, err
		})
		if len(ids) != maxEndpoints || !unique(ids) || !ascending(created) {
			t.Fatalf("endpoint pages gave %v", ids)
		}

		// Tokens are opaque, and only good for the tenant and list that
		// issued them.
		first, err := s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{PageSize: 1})
		if err != nil || first.GetNextPageToken() == "" {
			t.Fatalf("first page = %v, %v", first, err)
		}
		_, err = s.c.ListEndpoints(globex, &auditv1.ListEndpointsRequest{PageToken: first.GetNextPageToken()})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		_, err = s.c.ListWebhookSecrets(acme, &auditv1.ListWebhookSecretsRequest{PageToken: first.GetNextPageToken()})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		_, err = s.c.ListWebhookSecrets(acme, &auditv1.ListWebhookSecretsRequest{PageToken: "bm90IGEgdG9rZW4"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
		_, err = s.c.ListEndpoints(acme, &auditv1.ListEndpointsRequest{PageSize: -1})
		wantErr(t, err, codes.InvalidArgument, "PAGE_SIZE_INVALID")
	}, fmt.Sprint("--max-webhook-secrets=", maxSecrets), fmt.Sprint("--max-endpoints=", maxEndpoints))
}

// page is one page of a list: its ids, their create times (µs) and the
// next page's token.
type page struct {
	ids     []string
	created []int64
	next    string
}

// pages follows a list's page tokens to its end (ten pages at the most);
// a token never leads to an empty page.
func pages(t *testing.T, fetch func(token string) (page, error)) ([]string, []int64) {
	t.Helper()
	var ids []string
	var created []int64
	token := ""
	for range 10 {
		p, err := fetch(token)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" && len(p.ids) == 0 {
			t.Fatal("a page token led to an empty page")
		}
		ids, created = append(ids, p.ids...), append(created, p.created...)
		if token = p.next; token == "" {
			break
		}
	}
	return ids, created
}

func unique(ids []string) bool {
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return false
		}
		seen[id] = true
	}
	return true
}

func ascending(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] < ts[i-1] {
			return false
		}
	}
	return true
}
