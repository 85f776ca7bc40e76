package domain

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Referral-link clicks (TrackClick) are public: whoever follows a link
// sends everything the service learns of the click, so all of it is
// hostile.
//
//   - The click's event id is one the service makes (Config.NewClickID), in
//     the store's id space of link clicks. The ids a tenant gives its events
//     through RecordEvents (clicks, sign-ups, conversions, refunds) live in
//     the tenant's space: no visitor can take one, so no visitor can get a
//     tenant's conversion refused as a reused id. A tenant may still record
//     clicks of its own through RecordEvents: its ids, its space, counted
//     as it says (idempotent by its id, not deduplicated by visitor).
//   - Repeated clicks of one visitor on one code within ClickDedupWindow
//     count once. The visitor is the visitor id the service gave it (the
//     gateway's ep_vid cookie) when the click presents one of that shape,
//     else the client address with X-Forwarded-For and User-Agent. Only HMAC-SHA256 hashes
//     of them under the deployment's VisitorKey are stored, and only for
//     the window (PruneClickMarks).
//
// The dedup merges only clicks that look identical. X-Forwarded-For and
// User-Agent are the visitor's to choose: they can make its clicks look
// different (so can fresh connections from many addresses; rate limits
// bound those), never make another visitor's click look like its own,
// since the connection address is not the visitor's to choose. That is
// also why X-Forwarded-For is part of the key without being trusted as the
// address: behind a proxy that appends the real address to it, visitors
// that share the proxy's address stay apart.

// Visitor is what a click says of who clicked, all of it optional.
type Visitor struct {
	ID           string // the visitor id as presented (cookie ep_vid)
	Address      string // the connection's address, host or host:port
	ForwardedFor string // X-Forwarded-For, as received
	UserAgent    string
}

// Click is TrackClick's answer.
type Click struct {
	Code              string
	LandingURL        string
	AttributionWindow time.Duration
	// EventID is the id the click was recorded under; empty for a repeat.
	EventID string
	// VisitorID is the visitor id to keep (the presented one when it has
	// the shape of the service's, else a new one).
	VisitorID string
	Duplicate bool
	// Paused: the code's tenant is suspended; nothing was recorded and
	// there is nowhere to send the visitor.
	Paused bool
}

// ClickRequest is a click on the referral link of Code, a code as typed,
// by Visitor.
type ClickRequest struct {
	Code    string
	Visitor Visitor
}

// TrackClick records a click on the referral link of a typed code, in the
// code's tenant, unless it repeats the visitor's click on the code within
// the dedup window, and says where to send the visitor.
func (s *Service) TrackClick(ctx context.Context, req ClickRequest) (Click, error) {
	cands, err := parseCode(req.Code)
	if err != nil {
		return Click{}, err
	}
	owners, err := s.store.FindCodeOwners(ctx, cands)
	if err != nil {
		return Click{}, fmt.Errorf("find code owners: %w", err)
	}
	if err := oneCode(len(owners), req.Code); err != nil {
		return Click{}, err
	}
	owner := owners[0]
	if s.cfg.TenantActive != nil && !s.cfg.TenantActive(ctx, owner.Tenant) {
		return Click{Code: owner.Code, Paused: true}, nil
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	click := LinkClick{ID: s.cfg.NewClickID(), Code: owner.Code, OccurredAt: now}
	keys, visitorID := s.visitorKeys(owner.Code, req.Visitor)
	if s.cfg.ClickDedupWindow > 0 {
		click.VisitorKeys = keys
	}
	counted, err := s.store.RecordLinkClick(ctx, owner.Tenant, click, now.Add(-s.cfg.ClickDedupWindow))
	if err != nil {
		return Click{}, fmt.Errorf("record click: %w", err)
	}
	landing, err := s.store.LandingURL(ctx, owner.Tenant, owner.Code)
	if err != nil {
		return Click{}, fmt.Errorf("landing URL: %w", err)
	}
	if landing == "" {
		landing = s.cfg.DefaultLandingURL
	}
	out := Click{Code: owner.Code, LandingURL: landing, AttributionWindow: s.cfg.AttributionWindow,
		VisitorID: visitorID, Duplicate: !counted}
	if counted {
		out.EventID = click.ID
	}
	return out, nil
}

// PruneClickMarks deletes the visitor marks that no longer decide
// anything: those of clicks counted before the dedup window.
func (s *Service) PruneClickMarks(ctx context.Context) (int64, error) {
	n, err := s.store.PruneClickMarks(ctx, s.cfg.Now().Add(-s.cfg.ClickDedupWindow))
	if err != nil {
		return n, fmt.Errorf("prune click marks: %w", err)
	}
	return n, nil
}

// visitorKeys names the visitor of a click on code, and returns the
// visitor id to keep. A visitor id of the service's shape names the
// visitor alone (it is not signed: a client that makes up ids only makes
// its clicks look different, as it could with any User-Agent). Without one, the client (address, X-Forwarded-For, User-Agent)
// decides, and the new visitor id is marked too, so the visitor's next
// click, which presents it, is the same visitor.
func (s *Service) visitorKeys(code string, v Visitor) ([]string, string) {
	if ValidVisitorID(v.ID) {
		return []string{s.clickKey("visitor", code, v.ID)}, v.ID
	}
	id := s.cfg.NewVisitorID()
	return []string{
		s.clickKey("client", code, clientAddress(v.Address), v.ForwardedFor, v.UserAgent),
		s.clickKey("visitor", code, id),
	}, id
}

// clickKey is the hex HMAC-SHA256 of a kind of visitor key, the code and
// the parts, each length-prefixed so that no two inputs encode alike.
func (s *Service) clickKey(kind, code string, parts ...string) string {
	m := hmac.New(sha256.New, s.cfg.VisitorKey)
	for _, p := range append([]string{"echopilot.growth.click.v1", kind, code}, parts...) {
		m.Write(binary.AppendUvarint(nil, uint64(len(p))))
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// clientAddress reduces a connection address to the client it names: the
// host without the port (a new connection has a new port), an IPv6 address
// to its /64 (the privacy addresses of one host, which change, share it).
func clientAddress(raw string) string {
	host := raw
	if h, _, err := net.SplitHostPort(raw); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// visitorIDBytes is the size of a visitor id before encoding.
const visitorIDBytes = 16

// NewVisitorID returns a random visitor id: 16 bytes from crypto/rand, as
// unpadded base64url (22 characters).
func NewVisitorID() string {
	b := make([]byte, visitorIDBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidVisitorID reports whether id has the shape of the ids NewVisitorID
// makes. Anything else a client presents is not one the service gave
// out: the click is treated as one without.
func ValidVisitorID(id string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil && len(b) == visitorIDBytes && len(id) == base64.RawURLEncoding.EncodedLen(visitorIDBytes)
}
