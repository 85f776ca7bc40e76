package domain_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/services/queue/internal/domain"
	"github.com/echopilot/echopilot/services/queue/internal/store"
)

// pausedSync is the real store, except that the states a Sync reads are
// held until release closes, so a test can commit a revocation between
// Sync's read and its swap.
type pausedSync struct {
	*store.Store
	read    chan struct{}
	release chan struct{}
}

func (p pausedSync) WorkerTokenStates(ctx context.Context, now time.Time) ([]domain.TokenState, error) {
	states, err := p.Store.WorkerTokenStates(ctx, now)
	close(p.read)
	<-p.release
	return states, err
}

// A revocation that commits while a Sync is between its read and its swap
// stays in force on the replica that made it.
func TestRevocationSurvivesConcurrentSync(t *testing.T) {
	st := pausedSync{Store: newStore(t), read: make(chan struct{}), release: make(chan struct{})}
	sign := func(tenant, id string, issued, expires time.Time) (string, error) { return "token-" + id, nil }
	tokens := domain.NewTokens(st, domain.TokenConfig{Sign: sign})
	tok, _, err := tokens.Create(t.Context(), "acme", domain.CreateTokenRequest{Name: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	subject := domain.WorkerTokenSubjectPrefix + tok.ID
	synced := make(chan error, 1)
	go func() { synced <- tokens.Sync(t.Context()) }()
	<-st.read // Sync holds states in which the token is valid
	if _, err := tokens.Revoke(t.Context(), "acme", tok.ID); err != nil {
		t.Fatal(err)
	}
	wantReason(t, tokens.Check(t.Context(), "acme", subject), codes.Unauthenticated, domain.ReasonTokenRevoked)
	close(st.release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	wantReason(t, tokens.Check(t.Context(), "acme", subject), codes.Unauthenticated, domain.ReasonTokenRevoked)
}
