package gateway

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/server"
)

// Budget is one token bucket: Rate requests a second on average, Burst at
// once. A Rate of 0 or less means no limit.
type Budget struct {
	Rate  float64
	Burst int
}

func (b Budget) enabled() bool { return b.Rate > 0 }

// TenantLimits are a tenant's own limits from the tenant registry; a zero
// field means the deployment's default (see Tenant in tenancy.proto).
type TenantLimits struct {
	ReadRate, ReadBurst, WriteRate, WriteBurst int32
}

// OverrideLookup returns a tenant's own limits: zero TenantLimits (and no
// error) for a tenant without any, such as one not registered.
type OverrideLookup func(ctx context.Context, tenant string) (TenantLimits, error)

// RateLimitConfig sets the per-tenant rate limits (DESIGN.md section 2,
// rule 9). The zero value limits nothing.
//
// A request's key is the tenant of its bearer token when the token
// verifies, and otherwise the client's address: a tenant named by an
// unverified token, by X-Tenant-ID or by a query parameter is a claim, and
// charging it would let anyone spend another tenant's budget. Verified
// platform admins (tenant "default", role "admin") and platform services
// are not limited.
type RateLimitConfig struct {
	// Read budgets GET, HEAD and OPTIONS requests, Write every other
	// method, of each tenant and each anonymous client address. A class
	// with Rate 0 is unlimited for everybody, tenant overrides included.
	Read, Write Budget
	// Verifier checks bearer tokens (JWTs with the services' keys, API keys
	// through tenancy); nil limits every request by client address.
	Verifier *identity.Verifier
	// Overrides looks up a tenant's own limits; nil uses the defaults for
	// every tenant. Lookups run in the background: a request never waits
	// for one, and uses the defaults until the first answer arrives.
	Overrides OverrideLookup
	// OverrideTTL is how long a tenant's looked-up limits are used before
	// they are looked up again (default 30s).
	OverrideTTL time.Duration
	// TrustedProxies are the addresses of proxies in front of the gateway:
	// a request from one of them is charged to the address it names last in
	// X-Forwarded-For that is not itself a trusted proxy. Without it,
	// X-Forwarded-For is ignored (any client can write it).
	TrustedProxies []netip.Prefix
	// MaxKeys bounds the buckets kept, least recently used dropped first
	// (default 100,000). A dropped key starts again with a full bucket.
	MaxKeys int
	// RefusalDelay holds each 429 about this long (between half and one and
	// a half times it, never past its Retry-After) before answering: a client that retries at once, as a flood does, then
	// sends a request per connection per RefusalDelay instead of as fast as
	// the gateway can refuse, and its refusals stop taking the CPU other
	// tenants need. A held refusal costs a parked goroutine, no CPU; at most
	// MaxHeldRefusals are held at once, the rest answered at once. 0 answers
	// at once.
	RefusalDelay time.Duration
	// MaxHeldRefusals bounds the refusals held at once (default 10,000).
	MaxHeldRefusals int
}

func (c RateLimitConfig) enabled() bool { return c.Read.enabled() || c.Write.enabled() }

// ParsePrefixes parses a comma-separated list of CIDR prefixes or single
// addresses (the trusted proxies setting).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

const (
	classRead  = "read"
	classWrite = "write"
	kindTenant = "tenant"
	kindAddr   = "address"

	// reasonRateLimited is the error reason of a refused request.
	reasonRateLimited = "RATE_LIMITED"
	// overrideRetry is how soon a failed lookup is tried again.
	overrideRetry = 5 * time.Second
	// overrideTimeout bounds one lookup.
	overrideTimeout = 2 * time.Second
	// maxLookups bounds the lookups in flight; past it a lookup waits for
	// a later request.
	maxLookups = 8
)

// limiter enforces RateLimitConfig in front of the API routes.
type limiter struct {
	cfg       RateLimitConfig
	mu        sync.Mutex // guards buckets and the limiters in them
	buckets   *simplelru.LRU[string, *bucket]
	overrides *overrideCache // nil without cfg.Overrides
	held      chan struct{}  // refusals being held (RefusalDelay)
	refused   *prometheus.CounterVec
	// requests counts requests by the tenant they were charged to, whose
	// token the limiter verifies anyway (so no second verification, and
	// no series for a tenant a client merely claims).
	requests *prometheus.CounterVec
	tenants  *server.BoundedLabel
	now      func() time.Time
}

// maxTenantLabels bounds the tenant label of the request counter: the
// first 50 tenants a replica serves keep their own series (see
// server.BoundedLabel for why first-seen), the rest share "other".
const maxTenantLabels = 50

// Tenant label values that are not tenants.
const (
	anonymousLabel = "anonymous" // charged to the client address
	platformLabel  = "platform"  // platform admins and services, exempt
)

// bucket is the state of one key: a token bucket per class.
type bucket struct{ read, write *rate.Limiter }

func newLimiter(cfg RateLimitConfig, reg prometheus.Registerer, log *zap.Logger) (*limiter, error) {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	if cfg.OverrideTTL <= 0 {
		cfg.OverrideTTL = 30 * time.Second
	}
	if cfg.MaxHeldRefusals <= 0 {
		cfg.MaxHeldRefusals = 10_000
	}
	for _, b := range []*Budget{&cfg.Read, &cfg.Write} {
		if b.enabled() && b.Burst < 1 {
			b.Burst = max(1, int(math.Ceil(b.Rate)))
		}
	}
	buckets, err := simplelru.NewLRU[string, *bucket](cfg.MaxKeys, nil)
	if err != nil {
		return nil, fmt.Errorf("rate limits: %w", err)
	}
	l := &limiter{cfg: cfg, buckets: buckets, now: time.Now, held: make(chan struct{}, cfg.MaxHeldRefusals),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_gateway_rate_limited_total",
			Help: "Requests refused with 429 by the gateway's rate limits, by policy (tenant-read, tenant-write, address-read, address-write).",
		}, []string{"policy"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_gateway_tenant_requests_total",
			Help: "API requests by the tenant of their verified token (the first 50 tenants this replica saw; later ones \"other\"; \"anonymous\": no verified token; \"platform\": admins and services) and class (read, write); counted where a class has a rate limit.",
		}, []string{"tenant", "class"}),
		tenants: server.NewBoundedLabel(maxTenantLabels),
	}
	// Series exist from the start, so rate() over them works before the
	// first event (and the deploy checks see them: metricstest).
	for _, c := range []string{classRead, classWrite} {
		l.requests.WithLabelValues(server.OverflowLabel, c)
		for _, k := range []string{kindTenant, kindAddr} {
			l.refused.WithLabelValues(k + "-" + c)
		}
	}
	reg.MustRegister(l.refused, l.requests, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "echopilot_gateway_rate_limit_keys",
		Help: "Tenants and client addresses whose rate-limit state the gateway keeps.",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.buckets.Len())
	}))
	if cfg.Overrides != nil {
		if l.overrides, err = newOverrideCache(cfg.Overrides, cfg.OverrideTTL, cfg.MaxKeys, reg, log); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// close stops the background lookups of tenants' limits.
func (l *limiter) close() {
	if l.overrides != nil {
		l.overrides.close()
	}
}

// wrap refuses requests over their key's budget with 429 and tells every
// limited request where it stands.
func (l *limiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		class, budget := classRead, l.cfg.Read
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			class, budget = classWrite, l.cfg.Write
		}
		if !budget.enabled() {
			next.ServeHTTP(w, r)
			return
		}
		kind, key, exempt := l.identify(r)
		l.count(kind, key, exempt, class)
		if exempt {
			next.ServeHTTP(w, r)
			return
		}
		now := l.now()
		if kind == kindTenant && l.overrides != nil {
			budget = l.overrides.get(key, now).budget(class, budget)
		}
		allowed, tokens := l.take(kind+"\x00"+key, class, budget, now)
		policy := kind + "-" + class
		setRateLimitHeaders(w.Header(), policy, budget, tokens)
		if allowed {
			next.ServeHTTP(w, r)
			return
		}
		l.refused.WithLabelValues(policy).Inc()
		retry := retryAfter(budget, tokens)
		l.hold(r.Context(), l.cfg.RefusalDelay, time.Duration(retry)*time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		who := "this client address"
		if kind == kindTenant {
			who = fmt.Sprintf("tenant %q", key)
		}
		writeError(w, r, http.StatusTooManyRequests, codes.ResourceExhausted, reasonRateLimited,
			fmt.Sprintf("too many %ss for %s: the limit is %s requests/s with bursts of %d; retry after %d s",
				class, who, strconv.FormatFloat(budget.Rate, 'f', -1, 64), budget.Burst, retry),
			map[string]string{"policy": policy, "retry_after_seconds": strconv.Itoa(retry)})
	})
}

func (l *limiter) count(kind, key string, exempt bool, class string) {
	tenant := anonymousLabel
	switch {
	case exempt:
		tenant = platformLabel
	case kind == kindTenant:
		tenant = l.tenants.Value(key)
	}
	l.requests.WithLabelValues(tenant, class).Inc()
}

// hold waits about d (between d/2 and 3d/2, at most limit) before a
// refusal is answered, unless too many are held already or the client
// goes away. The jitter keeps a flood's connections from falling into
// step, which would make them arrive in waves that other tenants' requests
// queue behind.
func (l *limiter) hold(ctx context.Context, d, limit time.Duration) {
	if d <= 0 {
		return
	}
	d = min(d/2+rand.N(d), limit)
	select {
	case l.held <- struct{}{}:
	default:
		return
	}
	defer func() { <-l.held }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// identify returns the key a request is charged to: the verified token's
// tenant, else the client's address; exempt for platform admins and
// services.
func (l *limiter) identify(r *http.Request) (kind, key string, exempt bool) {
	if raw, ok := bearer(r.Header); ok && l.cfg.Verifier != nil {
		if p, err := l.cfg.Verifier.Verify(r.Context(), raw); err == nil {
			if (p.Tenant == identity.DefaultTenant && slices.Contains(p.Roles, identity.RoleAdmin)) || p.ServiceName() != "" {
				return "", "", true
			}
			return kindTenant, p.Tenant, false
		}
	}
	return kindAddr, clientKey(r, l.cfg.TrustedProxies), false
}

// take spends a token of key's class bucket, first bringing the bucket to
// budget (a tenant's override may have changed), and returns whether it
// could and the tokens left.
func (l *limiter) take(key, class string, budget Budget, now time.Time) (bool, float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = &bucket{}
		l.buckets.Add(key, b)
	}
	lim := &b.read
	if class == classWrite {
		lim = &b.write
	}
	if *lim == nil {
		*lim = rate.NewLimiter(rate.Limit(budget.Rate), budget.Burst)
	}
	if (*lim).Limit() != rate.Limit(budget.Rate) {
		(*lim).SetLimitAt(now, rate.Limit(budget.Rate))
	}
	if (*lim).Burst() != budget.Burst {
		(*lim).SetBurstAt(now, budget.Burst)
	}
	ok = (*lim).AllowN(now, 1)
	return ok, (*lim).TokensAt(now)
}

// setRateLimitHeaders writes the fields of draft-ietf-httpapi-ratelimit-headers-10
// (September 2025), whose structured-field form is
//
//	RateLimit-Policy: "tenant-read";q=200;w=2
//	RateLimit: "tenant-read";r=57;t=1
//
// A token bucket of rate R and burst B is advertised as the quota policy
// q=B requests per window w=B/R seconds (rounded up): a client that keeps
// to it is never refused. r is the requests left now (whole tokens), t the
// seconds until more quota is available (the next token), 0 when the
// bucket is full.
func setRateLimitHeaders(h http.Header, policy string, b Budget, tokens float64) {
	window := max(1, int(math.Ceil(float64(b.Burst)/b.Rate)))
	remaining := max(0, int(math.Floor(tokens)))
	next := 0
	if tokens < float64(b.Burst) {
		// Seconds until the next whole token.
		next = max(1, int(math.Ceil((math.Floor(tokens)+1-tokens)/b.Rate)))
	}
	// Canonical keys set directly: every limited request pays for these.
	h["Ratelimit-Policy"] = []string{sfItem(policy, "q", b.Burst, "w", window)}
	h["Ratelimit"] = []string{sfItem(policy, "r", remaining, "t", next)}
}

// sfItem is a structured-field string item (a policy name: no characters
// to escape) with two integer parameters.
func sfItem(name, k1 string, v1 int, k2 string, v2 int) string {
	b := make([]byte, 0, len(name)+24)
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ';')
	b = append(b, k1...)
	b = append(b, '=')
	b = strconv.AppendInt(b, int64(v1), 10)
	b = append(b, ';')
	b = append(b, k2...)
	b = append(b, '=')
	b = strconv.AppendInt(b, int64(v2), 10)
	return string(b)
}

// retryAfter is the whole seconds, at least 1, until one request fits.
func retryAfter(b Budget, tokens float64) int {
	return max(1, int(math.Ceil((1-tokens)/b.Rate)))
}

// bearer returns the token of an "Authorization: Bearer" header, or the
// API key of an X-API-Key header.
func bearer(h http.Header) (string, bool) {
	if keys := h.Values("X-API-Key"); len(keys) > 0 {
		return keys[0], len(keys) == 1 && len(h.Values("Authorization")) == 0 && identity.IsAPIKey(keys[0])
	}
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, raw, _ := strings.Cut(vals[0], " ")
	raw = strings.TrimSpace(raw)
	return raw, strings.EqualFold(scheme, "bearer") && raw != ""
}

// clientKey is the address a request is charged to: the peer's, or the
// client's as named by trusted proxies. IPv6 clients are keyed by their
// /64, the block one subscriber usually holds, so rotating addresses
// within it gains nothing.
func clientKey(r *http.Request, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr // not IP (a test's or a Unix socket's peer)
	}
	addr := ap.Addr().Unmap()
	if len(trusted) > 0 && inPrefixes(trusted, addr) {
		hops := forwardedFor(r.Header)
		for i := len(hops) - 1; i >= 0; i-- {
			a, ok := parseHop(hops[i])
			if !ok {
				break // the chain is broken here; the last proxy is all we know
			}
			addr = a
			if !inPrefixes(trusted, a) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	return hops
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port, IPv6 possibly in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// budget is the class's budget under l: the override where it sets one.
func (l TenantLimits) budget(class string, def Budget) Budget {
	rate, burst := l.ReadRate, l.ReadBurst
	if class == classWrite {
		rate, burst = l.WriteRate, l.WriteBurst
	}
	b := def
	if rate > 0 {
		b.Rate, b.Burst = float64(rate), 2*int(rate)
	}
	if burst > 0 {
		b.Burst = int(burst)
	}
	return b
}

// overrideCache keeps tenants' looked-up limits and refreshes them in the
// background.
type overrideCache struct {
	lookup  OverrideLookup
	ttl     time.Duration
	log     *zap.Logger
	lookups *prometheus.CounterVec
	slots   chan struct{} // lookups in flight
	ctx     context.Context
	stop    context.CancelFunc
	running sync.WaitGroup

	mu         sync.Mutex
	entries    *simplelru.LRU[string, *override]
	lastWarned time.Time
}

type override struct {
	limits     TenantLimits
	due        time.Time // when to look up again; zero: never looked up
	refreshing bool
}

func newOverrideCache(lookup OverrideLookup, ttl time.Duration, size int, reg prometheus.Registerer, log *zap.Logger) (*overrideCache, error) {
	entries, err := simplelru.NewLRU[string, *override](size, nil)
	if err != nil {
		return nil, fmt.Errorf("rate limit overrides: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &overrideCache{lookup: lookup, ttl: ttl, log: log, entries: entries, slots: make(chan struct{}, maxLookups),
		ctx: ctx, stop: stop,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "echopilot_gateway_rate_limit_lookups_total",
			Help: "Lookups of tenants' own rate limits in the tenant registry, by result (ok, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(c.lookups)
	return c, nil
}

// get returns tenant's limits as last looked up (zero, the defaults, before
// the first answer) and starts a lookup when they are due.
func (c *overrideCache) get(tenant string, now time.Time) TenantLimits {
	c.mu.Lock()
	e, ok := c.entries.Get(tenant)
	if !ok {
		e = &override{}
		c.entries.Add(tenant, e)
	}
	limits := e.limits
	start := !e.refreshing && !now.Before(e.due)
	if start {
		select {
		case c.slots <- struct{}{}:
			e.refreshing = true
			c.running.Add(1)
		default:
			start = false // busy: a later request starts it
		}
	}
	c.mu.Unlock()
	if start {
		go c.refresh(tenant, e)
	}
	return limits
}

// close stops the lookups under way and waits for them.
func (c *overrideCache) close() {
	c.stop()
	c.running.Wait()
}

func (c *overrideCache) refresh(tenant string, e *override) {
	defer c.running.Done()
	defer func() { <-c.slots }()
	ctx, cancel := context.WithTimeout(c.ctx, overrideTimeout)
	defer cancel()
	limits, err := c.lookup(ctx, tenant)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refreshing = false
	if c.ctx.Err() != nil {
		return // closing
	}
	if err != nil {
		// Keep what we had (the defaults at first) and try again soon.
		e.due = now.Add(overrideRetry)
		c.lookups.WithLabelValues("error").Inc()
		if now.Sub(c.lastWarned) >= time.Minute {
			c.lastWarned = now
			c.log.Warn("tenant rate limits lookup failed; using the last known or default limits",
				zap.String("tenant_id", tenant), zap.Error(err))
		}
		return
	}
	e.limits, e.due = limits, now.Add(c.ttl)
	c.lookups.WithLabelValues("ok").Inc()
}

// TenancyOverrides looks tenants' own limits up with tenancy's GetTenant.
// The calls must carry the gateway's own service identity: on the
// connection (grpc.WithPerRPCCredentials) or in opts. A tenant that is not
// registered has no limits of its own.
func TenancyOverrides(client tenancyv1.TenancyServiceClient, opts ...grpc.CallOption) OverrideLookup {
	return func(ctx context.Context, tenant string) (TenantLimits, error) {
		res, err := client.GetTenant(ctx, &tenancyv1.GetTenantRequest{TenantId: tenant}, opts...)
		if status.Code(err) == codes.NotFound {
			return TenantLimits{}, nil
		}
		if err != nil {
			return TenantLimits{}, fmt.Errorf("get tenant %q: %w", tenant, err)
		}
		t := res.GetTenant()
		return TenantLimits{
			ReadRate: t.GetRateLimitReadPerSecond(), ReadBurst: t.GetRateLimitReadBurst(),
			WriteRate: t.GetRateLimitWritePerSecond(), WriteBurst: t.GetRateLimitWriteBurst(),
		}, nil
	}
}
