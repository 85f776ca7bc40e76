package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/text"
)

// Worker token limits and defaults.
const (
	MinWorkerTokenTTL     = time.Minute
	MaxWorkerTokenTTL     = 24 * time.Hour
	DefaultWorkerTokenTTL = time.Hour
	// DefaultWorkerTokenMaxLifetime is how long after its creation a worker
	// token can be refreshed.
	DefaultWorkerTokenMaxLifetime = 30 * 24 * time.Hour
	MaxWorkerTokenNameLen         = 64
	// WorkerTokenSubjectPrefix starts the subject of every worker token;
	// the token id follows.
	WorkerTokenSubjectPrefix = "worker-token:"
	// RoleWorker is the only role of a worker token.
	RoleWorker = "worker"
	// workerTokenRetention is how long a token's row outlives its last
	// possible expiry (for ListWorkerTokens), before pruning.
	workerTokenRetention = 7 * 24 * time.Hour
)

// Worker token reasons.
const (
	ReasonWorkerTokenTTLInvalid  = "WORKER_TOKEN_TTL_INVALID"
	ReasonWorkerTokenNameInvalid = "WORKER_TOKEN_NAME_INVALID"
	ReasonWorkerTokenNotFound    = "WORKER_TOKEN_NOT_FOUND"
	// ReasonTokenRevoked refuses every call of a revoked worker token.
	ReasonTokenRevoked = "TOKEN_REVOKED"
	// ReasonWorkerTokenUnknown refuses a worker-token subject whose id was
	// never minted in the token's tenant.
	ReasonWorkerTokenUnknown = "WORKER_TOKEN_UNKNOWN"
	// ReasonWorkerTokenRequired: RefreshWorkerToken with another kind of token.
	ReasonWorkerTokenRequired = "WORKER_TOKEN_REQUIRED"
	// ReasonWorkerTokenMaxLifetime: the token cannot be refreshed any more.
	ReasonWorkerTokenMaxLifetime = "WORKER_TOKEN_MAX_LIFETIME"
	// ReasonWorkerTokensDisabled: the service has no signing key.
	ReasonWorkerTokensDisabled = "WORKER_TOKENS_DISABLED"
)

// ErrTokenNotFound is returned by a TokenStore when the tenant has no such
// worker token.
var ErrTokenNotFound = errors.New("worker token not found")

// WorkerToken is a minted worker token's record; the token itself is never
// stored.
type WorkerToken struct {
	TenantID string
	ID       string
	Name     string
	TTL      time.Duration
	Created  time.Time
	// Expires is the expiry of the latest token issued for ID.
	Expires    time.Time
	MaxExpires time.Time
	// RevokedAt is zero while the token is valid.
	RevokedAt time.Time
}

// Revoked reports whether the token was revoked.
func (t WorkerToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// TokenFilter selects a page of a tenant's worker tokens, newest first.
type TokenFilter struct {
	TenantID string
	BeforeID string // keyset: only tokens with a smaller id ("" for the first page)
	Limit    int
}

// TokenState is what the revocation check needs of a token.
type TokenState struct {
	TenantID string
	ID       string
	Revoked  bool
}

// TokenStore persists worker tokens. Every method is scoped to one tenant
// except those that say otherwise.
type TokenStore interface {
	CreateWorkerToken(ctx context.Context, t WorkerToken) error
	// GetWorkerToken returns ErrTokenNotFound when the tenant has no such token.
	GetWorkerToken(ctx context.Context, tenant, id string) (WorkerToken, error)
	ListWorkerTokens(ctx context.Context, f TokenFilter) ([]WorkerToken, error)
	// RevokeWorkerToken sets revoked_at to now unless already set, and
	// returns the token; ErrTokenNotFound when there is none.
	RevokeWorkerToken(ctx context.Context, tenant, id string, now time.Time) (WorkerToken, error)
	// ExtendWorkerToken sets the token's expiry when it is not revoked and
	// returns it as it is now (revoked or not); ErrTokenNotFound when none.
	ExtendWorkerToken(ctx context.Context, tenant, id string, expires time.Time) (WorkerToken, error)
	// WorkerTokenStates lists, across all tenants, the tokens whose max
	// expiry is after now.
	WorkerTokenStates(ctx context.Context, now time.Time) ([]TokenState, error)
	// DeleteWorkerTokens deletes, across all tenants, tokens whose max
	// expiry is before before, and returns how many.
	DeleteWorkerTokens(ctx context.Context, before time.Time) (int64, error)
}

// Signer signs the worker token of id in tenant, valid from issued to
// expires. It holds the key; the claims are the domain's.
type Signer func(tenant, id string, issued, expires time.Time) (string, error)

// TokenConfig tunes Tokens.
type TokenConfig struct {
	// Sign is nil when the service has no signing key: minting and
	// refreshing are refused (WORKER_TOKENS_DISABLED); checks still run.
	Sign Signer
	// MaxLifetime bounds refreshes (0: DefaultWorkerTokenMaxLifetime).
	MaxLifetime time.Duration
}

// Tokens mints, lists, revokes and refreshes worker tokens, and checks the
// worker tokens of incoming calls against revocations.
type Tokens struct {
	store TokenStore
	cfg   TokenConfig
	now   func() time.Time

	mu sync.RWMutex
	// known holds the tokens not past their max expiry, by id, as of the
	// last Sync, plus those looked up since.
	known map[string]TokenState
}

// NewTokens returns Tokens on st.
func NewTokens(st TokenStore, cfg TokenConfig) *Tokens {
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultWorkerTokenMaxLifetime
	}
	return &Tokens{store: st, cfg: cfg, now: func() time.Time { return time.Now().UTC() }, known: map[string]TokenState{}}
}

// CreateTokenRequest asks for a worker token.
type CreateTokenRequest struct {
	Name string
	// TTL is a duration string ("24h"); empty means DefaultWorkerTokenTTL.
	TTL string
}

// Create mints a worker token of tenant and returns its record and the
// token.
func (s *Tokens) Create(ctx context.Context, tenant string, r CreateTokenRequest) (WorkerToken, string, error) {
	if err := s.enabled(); err != nil {
		return WorkerToken{}, "", err
	}
	if err := checkTokenName(r.Name); err != nil {
		return WorkerToken{}, "", err
	}
	ttl, err := parseTTL(r.TTL)
	if err != nil {
		return WorkerToken{}, "", err
	}
	now := s.now()
	t := WorkerToken{
		TenantID: tenant, ID: ulid.Make().String(), Name: r.Name, TTL: ttl,
		Created: now, MaxExpires: now.Add(s.cfg.MaxLifetime),
	}
	t.Expires = earliest(now.Add(ttl), t.MaxExpires)
	// Signed before it is stored: a token that fails to sign leaves no row.
	tok, err := s.cfg.Sign(tenant, t.ID, now, t.Expires)
	if err != nil {
		return WorkerToken{}, "", fmt.Errorf("create worker token: %w", err)
	}
	if err := s.store.CreateWorkerToken(ctx, t); err != nil {
		return WorkerToken{}, "", fmt.Errorf("create worker token: %w", err)
	}
	s.remember(TokenState{TenantID: tenant, ID: t.ID})
	return t, tok, nil
}

// List pages through tenant's worker tokens, newest first.
func (s *Tokens) List(ctx context.Context, tenant string, r page.Request) ([]WorkerToken, string, error) {
	size, err := r.Size(DefaultListPageSize, MaxListPageSize)
	if err != nil {
		return nil, "", err
	}
	const scope = "worker-tokens"
	f := TokenFilter{TenantID: tenant, Limit: size + 1}
	if f.BeforeID, err = page.Decode(r.PageToken, scope); err != nil {
		return nil, "", err
	}
	tokens, err := s.store.ListWorkerTokens(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("list worker tokens: %w", err)
	}
	tokens, next := page.Trim(tokens, size, func(t WorkerToken) string { return t.ID }, scope)
	return tokens, next, nil
}

// Revoke revokes tenant's token id. This replica refuses it at once, the
// others at their next Sync.
func (s *Tokens) Revoke(ctx context.Context, tenant, id string) (WorkerToken, error) {
	if err := checkTokenID(id); err != nil {
		return WorkerToken{}, err
	}
	t, err := s.store.RevokeWorkerToken(ctx, tenant, id, s.now())
	if errors.Is(err, ErrTokenNotFound) {
		return WorkerToken{}, errTokenNotFound(id)
	}
	if err != nil {
		return WorkerToken{}, fmt.Errorf("revoke worker token: %w", err)
	}
	s.remember(TokenState{TenantID: tenant, ID: id, Revoked: true})
	return t, nil
}

// Refresh issues a new token of the calling worker token (subject, in
// tenant, already checked by Check): valid for its TTL again, never past
// its max expiry.
func (s *Tokens) Refresh(ctx context.Context, tenant, subject string) (string, time.Time, error) {
	if err := s.enabled(); err != nil {
		return "", time.Time{}, err
	}
	id, ok := strings.CutPrefix(subject, WorkerTokenSubjectPrefix)
	if !ok {
		return "", time.Time{}, apierr.PermissionDenied(ReasonWorkerTokenRequired,
			"only a worker token minted by CreateWorkerToken can be refreshed").InDomain(Domain)
	}
	t, err := s.store.GetWorkerToken(ctx, tenant, id)
	if errors.Is(err, ErrTokenNotFound) {
		return "", time.Time{}, errTokenUnknown()
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("refresh worker token: %w", err)
	}
	now := s.now()
	if t.Revoked() {
		return "", time.Time{}, errTokenRevoked()
	}
	if !now.Before(t.MaxExpires) {
		return "", time.Time{}, apierr.FailedPrecondition(ReasonWorkerTokenMaxLifetime,
			"worker token %s reached its max lifetime at %s: mint a new one", id, t.MaxExpires.Format(time.RFC3339)).InDomain(Domain)
	}
	expires := earliest(now.Add(t.TTL), t.MaxExpires)
	tok, err := s.cfg.Sign(tenant, id, now, expires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("refresh worker token: %w", err)
	}
	// Recorded for ListWorkerTokens; a revocation racing this write wins,
	// and the token it would have extended is refused.
	t, err = s.store.ExtendWorkerToken(ctx, tenant, id, expires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("refresh worker token: %w", err)
	}
	if t.Revoked() {
		return "", time.Time{}, errTokenRevoked()
	}
	return tok, expires, nil
}

// Check refuses a call made with a worker token that was revoked, or whose
// id was never minted in the token's tenant; other subjects pass. A token
// known from the last Sync costs a map lookup; an unknown one a read.
func (s *Tokens) Check(ctx context.Context, tokenTenant, subject string) error {
	id, ok := strings.CutPrefix(subject, WorkerTokenSubjectPrefix)
	if !ok {
		return nil
	}
	s.mu.RLock()
	st, known := s.known[id]
	s.mu.RUnlock()
	if !known {
		if checkTokenID(id) != nil {
			return errTokenUnknown()
		}
		t, err := s.store.GetWorkerToken(ctx, tokenTenant, id)
		if errors.Is(err, ErrTokenNotFound) {
			return errTokenUnknown()
		}
		if err != nil {
			return fmt.Errorf("check worker token: %w", err)
		}
		st = TokenState{TenantID: t.TenantID, ID: id, Revoked: t.Revoked()}
		s.remember(st)
	}
	switch {
	case st.TenantID != tokenTenant:
		// The id is another tenant's: this token was not minted by us.
		return errTokenUnknown()
	case st.Revoked:
		return errTokenRevoked()
	}
	return nil
}

// Sync replaces the known tokens with the store's, so that revocations
// made on other replicas take effect here. The service runs it every
// few seconds.
func (s *Tokens) Sync(ctx context.Context) error {
	states, err := s.store.WorkerTokenStates(ctx, s.now())
	if err != nil {
		return fmt.Errorf("sync worker tokens: %w", err)
	}
	known := make(map[string]TokenState, len(states))
	for _, st := range states {
		known[st.ID] = st
	}
	s.mu.Lock()
	// A revocation is never undone, but one that committed after the read
	// above is missing from states: keep what this replica already knows
	// to be revoked, or the swap would accept the token again until the
	// next Sync.
	for id, old := range s.known {
		if st, ok := known[id]; ok && old.Revoked {
			st.Revoked = true
			known[id] = st
		}
	}
	s.known = known
	s.mu.Unlock()
	return nil
}

// Prune deletes the records of tokens past their max expiry for a while.
func (s *Tokens) Prune(ctx context.Context) (int64, error) {
	n, err := s.store.DeleteWorkerTokens(ctx, s.now().Add(-workerTokenRetention))
	if err != nil {
		return n, fmt.Errorf("prune worker tokens: %w", err)
	}
	return n, nil
}

func (s *Tokens) remember(st TokenState) {
	s.mu.Lock()
	s.known[st.ID] = st
	s.mu.Unlock()
}

func (s *Tokens) enabled() error {
	if s.cfg.Sign == nil {
		return apierr.FailedPrecondition(ReasonWorkerTokensDisabled,
			"this queue has no worker token signing key (--worker-token-key-file)").InDomain(Domain)
	}
	return nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return DefaultWorkerTokenTTL, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinWorkerTokenTTL || d > MaxWorkerTokenTTL {
		return 0, invalid(ReasonWorkerTokenTTLInvalid, "ttl %q: want a duration from %v to %v, such as \"1h\"",
			apierr.Clip(s), MinWorkerTokenTTL, MaxWorkerTokenTTL)
	}
	return d, nil
}

func checkTokenName(name string) error {
	if !text.IsName(name, MaxWorkerTokenNameLen) {
		return invalid(ReasonWorkerTokenNameInvalid, "name %q: want 1 to %d printable characters",
			apierr.Clip(name), MaxWorkerTokenNameLen)
	}
	return nil
}

// checkTokenID refuses ids that no token can have before they reach SQL.
func checkTokenID(id string) error {
	if _, err := ulid.ParseStrict(id); err != nil {
		return errTokenNotFound(id)
	}
	return nil
}

func errTokenNotFound(id string) error {
	return apierr.NotFound(ReasonWorkerTokenNotFound, "worker token %q not found", apierr.Clip(id)).InDomain(Domain)
}

func errTokenRevoked() error {
	return apierr.Unauthenticated(ReasonTokenRevoked, "the worker token was revoked").InDomain(Domain)
}

func errTokenUnknown() error {
	return apierr.Unauthenticated(ReasonWorkerTokenUnknown, "the worker token is not one this queue minted").InDomain(Domain)
}
