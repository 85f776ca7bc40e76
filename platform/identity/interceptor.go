package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	"github.com/echopilot/echopilot/platform/tlsconfig"
)

// Metadata keys read by the interceptor. The gateway forwards the tenant_id
// query parameter as x-tenant-id-query.
const (
	MDAuthorization = "authorization"
	MDTenant        = "x-tenant-id"
	MDTenantQuery   = "x-tenant-id-query"
	// MDAPIKey carries an API key (the X-API-Key header), an alternative
	// to "authorization: Bearer ep_live_…".
	MDAPIKey = "x-api-key"
)

// DecisionSink receives every access decision. Record runs on the request
// path and must not block.
type DecisionSink interface {
	Record(Decision)
}

// SinkFunc adapts a function to a DecisionSink.
type SinkFunc func(Decision)

// Record calls f(d).
func (f SinkFunc) Record(d Decision) { f(d) }

// InterceptorConfig wires an Interceptor.
type InterceptorConfig struct {
	Verifier *Verifier
	Mode     Mode
	Sink     DecisionSink
	// Files resolves method policies; nil means protoregistry.GlobalFiles.
	Files *protoregistry.Files
	// Logger receives the causes of refused tokens at debug level (clients
	// only see the reason); nil discards them.
	Logger *zap.Logger
	// BindServicePeers refuses a service token unless the caller's
	// verified client certificate names the same service (mutual TLS).
	BindServicePeers bool
	// TenantStates, when set, refuses the writes (ACCESS_WRITE methods) of
	// tenants that are not active (see TenantStates.CheckWrite).
	TenantStates *TenantStates
}

// Interceptor enforces the declared policy of every RPC except health checks
// and reflection.
type Interceptor struct {
	verifier *Verifier
	mode     Mode
	sink     DecisionSink
	files    *protoregistry.Files
	log      *zap.Logger
	bindPeer bool
	states   *TenantStates
	// policies caches full method name → *authv1.Policy (nil: none declared).
	policies sync.Map
}

// NewInterceptor checks cfg and returns an Interceptor.
func NewInterceptor(cfg InterceptorConfig) (*Interceptor, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("new identity interceptor: no verifier")
	}
	if cfg.Sink == nil {
		return nil, errors.New("new identity interceptor: no decision sink")
	}
	i := &Interceptor{verifier: cfg.Verifier, mode: cfg.Mode, sink: cfg.Sink, files: cfg.Files, log: cfg.Logger, bindPeer: cfg.BindServicePeers, states: cfg.TenantStates}
	if i.files == nil {
		i.files = protoregistry.GlobalFiles
	}
	if i.log == nil {
		i.log = zap.NewNop()
	}
	return i, nil
}

// UnaryServerInterceptor checks each call before its handler runs and gives
// the handler the Caller through the context.
func (i *Interceptor) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if skipped(info.FullMethod) {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		msg, _ := req.(proto.Message)
		c, err := i.authorize(ctx, info.FullMethod, md, requestedTenants(md, msg))
		if err != nil {
			return nil, err
		}
		return handler(WithCaller(ctx, c), req)
	}
}

// StreamServerInterceptor decides once, when the stream opens, from metadata
// alone: the handler may read the Caller before receiving anything. Streams
// therefore name their tenant in x-tenant-id; a received message whose
// tenant_id differs from the stream's tenant is refused (TENANT_CONFLICT or
// TENANT_INVALID) rather than re-decided mid-stream.
func (i *Interceptor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if skipped(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx := ss.Context()
		md, _ := metadata.FromIncomingContext(ctx)
		c, err := i.authorize(ctx, info.FullMethod, md, requestedTenants(md, nil))
		if err != nil {
			return err
		}
		return handler(srv, &tenantStream{
			ServerStream: ss,
			ctx:          WithCaller(ctx, c),
			caller:       c,
			method:       info.FullMethod,
			checked:      !i.policy(info.FullMethod).GetPublic(),
			sink:         i.sink,
		})
	}
}

// authorize decides one call and records the decision.
func (i *Interceptor) authorize(ctx context.Context, method string, md metadata.MD, requested []string) (Caller, error) {
	in := Input{Method: method, Policy: i.policy(method), Mode: i.mode, Requested: requested, Now: time.Now(), BindServicePeers: i.bindPeer}
	if i.bindPeer {
		in.PeerService = tlsconfig.PeerService(ctx)
	}
	if !in.Policy.GetPublic() {
		in.Principal, in.TokenErr = i.authenticate(ctx, md)
	}
	c, out := Decide(in)
	if out.Denial == nil && out.Decision != nil && in.Policy.GetAccess() == authv1.Access_ACCESS_WRITE {
		// Decide is pure; the tenant's state is checked after it, and the
		// refusal is recorded like any other.
		if e := i.states.CheckWrite(ctx, c); e != nil {
			c, out.Denial = Caller{}, e
			d := out.Decision
			d.Allowed, d.Reason, d.CallerTenant = false, e.Reason, CountedTenant(d.CallerTenant, d.Verified, false)
		}
	}
	if out.Decision != nil {
		i.sink.Record(*out.Decision)
	}
	if in.TokenErr != nil {
		i.log.Debug("bearer token refused", zap.String("method", method), zap.Error(in.TokenErr))
	}
	return c, out.Err()
}

// authenticate verifies the bearer token: no token is (nil, nil).
func (i *Interceptor) authenticate(ctx context.Context, md metadata.MD) (*Principal, error) {
	raw, present, err := bearerToken(md)
	if !present || err != nil {
		return nil, err
	}
	p, err := i.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func (i *Interceptor) policy(method string) *authv1.Policy {
	if p, ok := i.policies.Load(method); ok {
		return p.(*authv1.Policy)
	}
	var p *authv1.Policy
	if m := findMethod(i.files, method); m != nil {
		p = policyOf(m)
	}
	i.policies.Store(method, p)
	return p
}

func skipped(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

// bearerToken extracts the token of "authorization: Bearer <token>" or the
// API key of "x-api-key: <key>". Any other authorization value, an x-api-key
// that is not an API key, or both headers at once count as a presented,
// invalid token.
func bearerToken(md metadata.MD) (raw string, present bool, err error) {
	if keys := md.Get(MDAPIKey); len(keys) > 0 {
		switch {
		case len(keys) > 1 || len(md.Get(MDAuthorization)) > 0:
			return "", true, invalidToken(errors.New("more than one credential (x-api-key and authorization)"))
		case !IsAPIKey(keys[0]):
			return "", true, invalidToken(errors.New("x-api-key is not an API key"))
		}
		return keys[0], true, nil
	}
	vals := md.Get(MDAuthorization)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, invalidToken(errors.New("more than one authorization value"))
	}
	scheme, raw, _ := strings.Cut(vals[0], " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "bearer") || raw == "" {
		return "", true, invalidToken(errors.New("authorization is not a bearer token"))
	}
	return raw, true, nil
}

// requestedTenants lists every tenant a request names: each value of both
// metadata keys, then msg's tenant_id field.
func requestedTenants(md metadata.MD, msg proto.Message) []string {
	names := slices.Concat(md.Get(MDTenant), md.Get(MDTenantQuery))
	if t := tenantField(msg); t != "" {
		names = append(names, t)
	}
	return names
}

// tenantField returns msg's top-level string field tenant_id, "" without one.
func tenantField(msg proto.Message) string {
	if msg == nil {
		return ""
	}
	m := msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("tenant_id")
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	return m.Get(fd).String()
}

// tenantStream carries the Caller and holds every received message to the
// stream's tenant.
type tenantStream struct {
	grpc.ServerStream
	ctx     context.Context
	caller  Caller
	method  string
	checked bool // false for public methods
	sink    DecisionSink
}

func (s *tenantStream) Context() context.Context { return s.ctx }

func (s *tenantStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	msg, _ := m.(proto.Message)
	t := tenantField(msg)
	if !s.checked || t == "" || t == s.caller.Tenant {
		return nil
	}
	_, e := resolveTenant([]string{s.caller.Tenant, t})
	home := s.caller.Tenant
	if s.caller.Verified {
		home = s.caller.TokenTenant
	}
	s.sink.Record(Decision{
		Time: time.Now(), Method: s.method, Subject: s.caller.Subject, CallerTenant: home,
		TargetTenant: s.caller.Tenant, Reason: e.Reason, Verified: s.caller.Verified,
	})
	return e
}
