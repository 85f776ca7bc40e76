package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/echopilot/echopilot/platform/apierr"
)

const (
	// leeway absorbs clock skew between the issuer and us.
	leeway = 30 * time.Second
	// maxTokenLen bounds the work an attacker can make us do per call.
	maxTokenLen = 8 << 10

	// jwksRefreshEvery bounds how long a key removed from the JWKS stays trusted.
	jwksRefreshEvery = time.Hour
	// jwksUnknownKIDEvery bounds how often tokens with unknown kids make us
	// fetch the JWKS.
	jwksUnknownKIDEvery = time.Minute
	// jwksFetchTimeout also caps how long a request waits for the refresh
	// limiter. Being far below jwksUnknownKIDEvery, it makes a flood of unknown
	// kids fail at once instead of queueing behind the limiter.
	jwksFetchTimeout = 5 * time.Second
)

// VerifierConfig names the keys that sign acceptable tokens. At least one
// key source is required; accepted algorithms follow from the keys given.
type VerifierConfig struct {
	// HS256Secret is the shared secret of local runs
	// (ECHOPILOT_JWT_HS256_SECRET), at least 32 bytes.
	HS256Secret []byte
	// PublicKeyFiles are PEM files of public keys or certificates: RSA of at
	// least 2048 bits (RS256), P-256 (ES256) or Ed25519 (EdDSA).
	PublicKeyFiles []string
	// JWKSURL serves the identity provider's keys. Asymmetric tokens that
	// carry a kid are checked against it, tokens without one against
	// PublicKeyFiles.
	JWKSURL string
	// HTTPClient fetches JWKSURL; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer   string
	Audience string
	// Logger receives JWKS refresh failures; nil discards them.
	Logger *zap.Logger
	// TokenCacheSize bounds the cache of verified tokens: 0 means 10,000,
	// negative disables it.
	TokenCacheSize int
	// APIKeys resolves API keys (bearer tokens starting ep_live_); nil
	// refuses them.
	APIKeys APIKeyLookup
}

// tokenCacheMaxAge bounds how long a verified token is trusted without a new
// signature check.
const tokenCacheMaxAge = 5 * time.Minute

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	secret []byte
	// static holds, per algorithm, the key or jwt.VerificationKeySet from
	// PublicKeyFiles.
	static map[string]any
	// byKID holds the PublicKeyFiles keys by KeyID, so a token naming one
	// of them in its kid (worker tokens the queue signs) is verified with
	// that key directly, even when a JWKS is configured too.
	byKID map[string]crypto.PublicKey
	jwks  keyfunc.Keyfunc
	stop  context.CancelFunc
	cache *tokenCache  // nil when disabled
	keys  *apiKeyCache // nil without VerifierConfig.APIKeys
}

// NewVerifier loads the configured keys. With a JWKS URL it starts a
// background refresh that Close stops.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	size := cfg.TokenCacheSize
	if size == 0 {
		size = 10_000
	}
	v := &Verifier{static: map[string]any{}, byKID: map[string]crypto.PublicKey{}, stop: func() {}, cache: newTokenCache(size, tokenCacheMaxAge)}
	if cfg.APIKeys != nil {
		v.keys = newAPIKeyCache(cfg.APIKeys)
	}
	var methods []string
	if len(cfg.HS256Secret) > 0 {
		if err := checkSecret(cfg.HS256Secret); err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.secret = bytes.Clone(cfg.HS256Secret)
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	byAlg := map[string][]jwt.VerificationKey{}
	for _, path := range cfg.PublicKeyFiles {
		keys, err := loadPublicKeys(path)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		for _, k := range keys {
			alg, err := algFor(k)
			if err != nil {
				return nil, fmt.Errorf("new verifier: %s: %w", path, err)
			}
			byAlg[alg] = append(byAlg[alg], k)
			methods = append(methods, alg)
			kid, err := KeyID(k)
			if err != nil {
				return nil, fmt.Errorf("new verifier: %s: %w", path, err)
			}
			v.byKID[kid] = k
		}
	}
	for alg, keys := range byAlg {
		if len(keys) == 1 {
			v.static[alg] = keys[0]
		} else {
			v.static[alg] = jwt.VerificationKeySet{Keys: keys}
		}
	}
	if cfg.JWKSURL != "" {
		jwks, stop, err := newJWKS(cfg)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.jwks, v.stop = jwks, stop
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg())
	}
	if len(methods) == 0 {
		return nil, errors.New("new verifier: no HS256 secret, public key file or JWKS URL configured")
	}
	slices.Sort(methods)
	opts := []jwt.ParserOption{
		// Never "none", never an algorithm we hold no key for.
		jwt.WithValidMethods(slices.Compact(methods)),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func newJWKS(cfg VerifierConfig) (keyfunc.Keyfunc, context.CancelFunc, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:            cfg.HTTPClient,
		HTTPTimeout:       jwksFetchTimeout,
		RateLimitWaitMax:  jwksFetchTimeout,
		RefreshInterval:   jwksRefreshEvery,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("refresh JWKS", zap.String("url", u), zap.Error(err))
			}
		},
	})
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("jwks %s: %w", cfg.JWKSURL, err)
	}
	return kf, cancel, nil
}

// Close stops the JWKS background refresh.
func (v *Verifier) Close() { v.stop() }

// Verify checks raw, a JWT or an API key, and returns the principal it
// proves. A failure wraps an *apierr.Error (UNAUTHENTICATED, reason
// TOKEN_EXPIRED or TOKEN_INVALID; UNAVAILABLE API_KEY_LOOKUP_UNAVAILABLE
// when an API key cannot be checked now) together with the cause; give
// clients the former (apierr.As), log the latter.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > maxTokenLen {
		return Principal{}, invalidToken(fmt.Errorf("token is %d bytes, more than %d", len(raw), maxTokenLen))
	}
	if IsAPIKey(raw) {
		// Never through the JWT cache: a key's validity changes (revocation)
		// on the key store's word, not a signature's.
		if v.keys == nil {
			return Principal{}, invalidToken(errors.New("api keys are not accepted here"))
		}
		return v.keys.verify(ctx, raw)
	}
	var key [sha256.Size]byte
	now := time.Now()
	if v.cache != nil {
		key = sha256.Sum256([]byte(raw))
		if p, ok := v.cache.get(key, now); ok {
			return p, nil
		}
	}
	var c tokenClaims
	if _, err := v.parser.ParseWithClaims(raw, &c, v.keyfunc(ctx)); err != nil {
		// jwt checks claims only after the signature, so an expired token
		// here is a genuine one.
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, fmt.Errorf("%w: %w", errTokenExpired(), err)
		}
		return Principal{}, invalidToken(err)
	}
	if !ValidTenant(c.TenantID) {
		return Principal{}, invalidToken(fmt.Errorf("tenant_id %q is missing or malformed", apierr.Clip(c.TenantID)))
	}
	p := Principal{Subject: c.Subject, Tenant: c.TenantID, Roles: c.Roles}
	if v.cache != nil && c.ExpiresAt != nil {
		v.cache.put(key, p, c.ExpiresAt.Time, now)
	}
	return p, nil
}

// keyfunc picks the key by the token's algorithm, so a key of one kind can
// never verify a token of another (HS256 never reaches the JWKS).
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		if alg == jwt.SigningMethodHS256.Alg() {
			if v.secret == nil {
				return nil, errors.New("no HS256 secret configured")
			}
			return v.secret, nil
		}
		if kid, ok := t.Header["kid"].(string); ok {
			// The algorithm must be the key's: a token cannot pick how its
			// key is used.
			if k, ok := v.byKID[kid]; ok {
				if want, _ := algFor(k); want != alg {
					return nil, fmt.Errorf("key %q is for %s, not %s", apierr.Clip(kid), want, alg)
				}
				return k, nil
			}
		}
		if _, hasKID := t.Header["kid"]; hasKID && v.jwks != nil {
			return v.jwksKey(ctx, t)
		}
		if k, ok := v.static[alg]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no public key for %s", alg)
	}
}

// jwksKey returns the JWKS key of t's kid when it is fit to verify
// signatures: its "use" is absent or "sig" (an encryption key must not
// double as a signing key) and, for RSA, it has 2048 bits or more, the same
// floor as key files.
func (v *Verifier) jwksKey(ctx context.Context, t *jwt.Token) (any, error) {
	key, err := v.jwks.KeyfuncCtx(ctx)(t)
	if err != nil {
		return nil, err
	}
	kid, _ := t.Header["kid"].(string)
	jwk, err := v.jwks.Storage().KeyRead(ctx, kid)
	if err != nil {
		return nil, fmt.Errorf("jwks key %q: %w", apierr.Clip(kid), err)
	}
	if use := jwk.Marshal().USE; use != "" && use != jwkset.UseSig {
		return nil, fmt.Errorf("jwks key %q has use %q, not %q", apierr.Clip(kid), use, jwkset.UseSig)
	}
	if _, err := algFor(key); err != nil {
		return nil, fmt.Errorf("jwks key %q: %w", apierr.Clip(kid), err)
	}
	return key, nil
}

func invalidToken(cause error) error {
	return fmt.Errorf("%w: %w", errTokenInvalid(), cause)
}

func loadPublicKeys(path string) ([]crypto.PublicKey, error) {
	rest, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		k, err := parsePublicKey(block)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key found", path)
	}
	return keys, nil
}

func parsePublicKey(b *pem.Block) (crypto.PublicKey, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	// Private keys end up here too: verifiers must not hold them.
	return nil, fmt.Errorf("PEM block %q is not a public key or certificate", b.Type)
}

// KeyID names a public key in a token's kid header: the unpadded base64url
// SHA-256 of its PKIX encoding. A verifier with the key in PublicKeyFiles
// knows it by this name.
func KeyID(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

func algFor(k crypto.PublicKey) (string, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too short", k.N.BitLen())
		}
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA curve %s is not supported, only P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256.Alg(), nil
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	}
	return "", fmt.Errorf("public key type %T is not supported", k)
}
