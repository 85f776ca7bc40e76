package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/netguard"
)

const (
	sessionCookie = "echopilot_console"
	// loginCookie carries the sign-in form's CSRF token before a session
	// exists.
	loginCookie = "echopilot_console_login"
	// maxSession bounds a session whose token names no expiry.
	maxSession = 12 * time.Hour
)

// session is what the sealed cookie holds: the person's token and what the
// console shows about them. The backends verify the token on every call;
// the rest is for display and for the CSRF check.
type session struct {
	Token   string    `json:"t"`
	Subject string    `json:"s"`
	Tenant  string    `json:"n"`
	Roles   []string  `json:"r,omitempty"`
	Expires time.Time `json:"e"`
	CSRF    string    `json:"c"`
}

// Admin is true for a platform admin (tenant default, role admin), who
// reads every tenant.
func (s *session) Admin() bool {
	return s.Tenant == identity.DefaultTenant && slices.Contains(s.Roles, identity.RoleAdmin)
}

// sealer seals sessions with AES-256-GCM, so any replica holding the same
// key opens them and nobody without it can read or forge one.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256(key)
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// sessionAD binds sealed values to their purpose.
var sessionAD = []byte("echopilot-console-session-v1")

func (s *sealer) seal(v *session) (string, error) { return s.sealValue(sessionAD, v) }

func (s *sealer) open(value string) (*session, error) {
	var v session
	if err := s.openValue(sessionAD, value, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// sealValue encrypts v's JSON, bound to ad (what it is for).
func (s *sealer) sealValue(ad []byte, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, ad)), nil
}

// openValue decrypts what sealValue sealed with the same ad into v.
func (s *sealer) openValue(ad []byte, value string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	n := s.aead.NonceSize()
	if err != nil || len(raw) < n {
		return errors.New("malformed sealed value")
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], ad)
	if err != nil {
		return errors.New("sealed value does not open")
	}
	return json.Unmarshal(plain, v)
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secureCookie is false only for plain HTTP from a loopback address (make
// run, tests); anything else is assumed to be behind TLS.
func secureCookie(r *http.Request) bool {
	return r.TLS != nil || !netguard.IsLoopbackHostPort(r.RemoteAddr)
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, expires time.Time) {
	c := &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, Secure: secureCookie(r),
		SameSite: http.SameSiteStrictMode}
	if expires.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	http.SetCookie(w, c)
}

// current opens the request's session; nil when there is none or it expired.
func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s, err := c.seal.open(ck.Value)
	if err != nil || !c.now().Before(s.Expires) {
		return nil
	}
	return s
}

// signedIn admits a request with a live session, and a POST only with the
// session's CSRF token in its form.
func (c *Console) signedIn(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				c.fail(w, r, nil, http.StatusForbidden, "SESSION_REQUIRED", "Sign in first: this request carries no live console session.")
				return
			}
			http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !sameToken(r.PostFormValue("csrf"), s.CSRF) {
			c.fail(w, r, s, http.StatusForbidden, "CSRF_TOKEN_MISMATCH",
				"This form did not carry this session's CSRF token, so nothing was changed. Reload the page and try again.")
			return
		}
		h(w, r, s)
	}
}

func sameToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// loginView is the sign-in page's data.
type loginView struct {
	CSRF, Next, Error string
	OIDC              string // the provider's sign-in link, when configured
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if t := r.URL.Query().Get("ticket"); t != "" {
		c.ticketLogin(w, r, t)
		return
	}
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := ""
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) >= 32 {
		tok = ck.Value
	} else {
		tok = randomToken()
		setCookie(w, r, loginCookie, tok, c.now().Add(time.Hour))
	}
	v := &loginView{CSRF: tok, Next: safeNext(r.FormValue("next")), Error: msg}
	if c.oidc != nil {
		v.OIDC = "/console/oidc/start?next=" + url.QueryEscape(v.Next)
	}
	c.render(w, r, nil, code, "login", "Sign in", v)
}

// login exchanges a pasted bearer token for a session, once a backend has
// accepted the token.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), ck.Value) {
		c.fail(w, r, nil, http.StatusForbidden, "CSRF_TOKEN_MISMATCH",
			"The sign-in form did not carry its CSRF token. Open the sign-in page again.")
		return
	}
	tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	if err := c.startSession(w, r, tok); err != nil {
		c.showLogin(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// startSession checks tok with tenancy (GetTenantInfo, as the person) and
// sets the session cookie, expiring with the token.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, tok string) error {
	if tok == "" || len(tok) > 8<<10 {
		return errors.New("paste a bearer token (a JWT) to sign in")
	}
	claims, err := peekClaims(tok)
	if err != nil {
		return err
	}
	ctx := metadata.AppendToOutgoingContext(r.Context(), "authorization", "Bearer "+tok)
	info, err := c.c.tenancy.GetTenantInfo(ctx, &tenancyv1.GetTenantInfoRequest{})
	if err != nil {
		return fmt.Errorf("the token was refused: %s", errText(err))
	}
	if !info.GetTenantVerified() {
		return errors.New("the token was not verified by the platform")
	}
	exp := c.now().Add(maxSession)
	if claims.Exp > 0 {
		exp = time.Unix(claims.Exp, 0)
	}
	if !c.now().Before(exp) {
		return errors.New("the token has expired")
	}
	s := &session{Token: tok, Subject: claims.Sub, Tenant: info.GetTenantId(), Roles: claims.Roles, Expires: exp, CSRF: randomToken()}
	v, err := c.seal.seal(s)
	if err != nil {
		return err
	}
	setCookie(w, r, sessionCookie, v, exp)
	setCookie(w, r, loginCookie, "", time.Time{})
	return nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	setCookie(w, r, sessionCookie, "", time.Time{})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// peekClaims reads a JWT's claims without verifying it: the backend
// verifies the token; the console only shows who signed in and when the
// session ends.
type peeked struct {
	Sub   string   `json:"sub"`
	Exp   int64    `json:"exp"`
	Roles []string `json:"roles"`
}

func peekClaims(tok string) (peeked, error) {
	var p peeked
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return p, errors.New("that is not a JWT (three dot-separated parts)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return p, errors.New("that is not a JWT (its claims are not base64url)")
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, errors.New("that is not a JWT (its claims are not JSON)")
	}
	return p, nil
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.Contains(next, "//") || strings.Contains(next, "/..") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

// DevTicket is make run's one-time sign-in: a random ticket, valid once
// until Expires, exchanged for a session carrying the dev admin's token.
type DevTicket struct {
	Ticket  string    `json:"ticket"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	used    atomic.Bool
}

// LoadDevTicket reads a ticket file written by devstack.
func LoadDevTicket(path string) (*DevTicket, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console dev ticket: %w", err)
	}
	var t DevTicket
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("console dev ticket %s: %w", path, err)
	}
	if len(t.Ticket) < 16 || t.Token == "" || t.Expires.IsZero() {
		return nil, fmt.Errorf("console dev ticket %s: want ticket (16+ characters), token and expires", path)
	}
	return &t, nil
}

func (c *Console) ticketLogin(w http.ResponseWriter, r *http.Request, ticket string) {
	t := c.ticket
	if t == nil || !sameToken(ticket, t.Ticket) || !c.now().Before(t.Expires) || !t.used.CompareAndSwap(false, true) {
		c.showLogin(w, r, http.StatusForbidden, "That sign-in link is not valid: it was used already, has expired, or this gateway has none.")
		return
	}
	if err := c.startSession(w, r, t.Token); err != nil {
		c.showLogin(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}
