// Package apierr builds the errors every service returns: a gRPC status with an
// errdetails.ErrorInfo carrying a stable UPPER_SNAKE reason (AIP-193).
//
// Domain code returns *Error values (or wraps them with %w); the gRPC layer
// turns them into statuses once, through GRPCStatus, which grpc-go calls.
// Anything that is not an *Error is an internal failure and is masked at the
// edge by the server runtime.
package apierr

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/echopilot/echopilot/platform/text"
)

// Error is a client-visible failure with a gRPC code and a stable reason.
type Error struct {
	Code     codes.Code
	Reason   string
	Message  string
	Domain   string
	Metadata map[string]string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Reason, e.Message) }

// GRPCStatus lets grpc-go and status.FromError convert the error directly.
func (e *Error) GRPCStatus() *status.Status {
	return Status(e.Code, e.Domain, e.Reason, e.Message, e.Metadata)
}

// Status builds a status with one ErrorInfo detail.
func Status(code codes.Code, domain, reason, msg string, md map[string]string) *status.Status {
	if domain == "" {
		domain = DefaultDomain
	}
	st := status.New(code, msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: md})
	if err != nil {
		// Only fails for a nil detail; keep the bare status rather than lose the error.
		return st
	}
	return withInfo
}

// DefaultDomain is used when an error names no domain.
const DefaultDomain = "echopilot"

// New returns an *Error.
func New(code codes.Code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// InDomain returns a copy of e carrying domain (for example "tenancy.echopilot").
func (e *Error) InDomain(domain string) *Error {
	c := *e
	c.Domain = domain
	return &c
}

// With returns a copy of e with one metadata entry added.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Metadata = make(map[string]string, len(e.Metadata)+1)
	for k, v := range e.Metadata {
		c.Metadata[k] = v
	}
	c.Metadata[key] = value
	return &c
}

// Convenience constructors for the common codes.
func InvalidArgument(reason, format string, args ...any) *Error {
	return New(codes.InvalidArgument, reason, format, args...)
}

func NotFound(reason, format string, args ...any) *Error {
	return New(codes.NotFound, reason, format, args...)
}

func AlreadyExists(reason, format string, args ...any) *Error {
	return New(codes.AlreadyExists, reason, format, args...)
}

func PermissionDenied(reason, format string, args ...any) *Error {
	return New(codes.PermissionDenied, reason, format, args...)
}

func Unauthenticated(reason, format string, args ...any) *Error {
	return New(codes.Unauthenticated, reason, format, args...)
}

func FailedPrecondition(reason, format string, args ...any) *Error {
	return New(codes.FailedPrecondition, reason, format, args...)
}

func ResourceExhausted(reason, format string, args ...any) *Error {
	return New(codes.ResourceExhausted, reason, format, args...)
}

func Unavailable(reason, format string, args ...any) *Error {
	return New(codes.Unavailable, reason, format, args...)
}

// As finds an *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Reason returns the ErrorInfo reason of a gRPC error, or "" when it has none.
// Tests and clients use it to assert on stable codes.
func Reason(err error) string {
	reason, _ := info(err)
	return reason
}

// Metadata returns the ErrorInfo metadata of a gRPC error (nil for none).
func Metadata(err error) map[string]string {
	_, md := info(err)
	return md
}

func info(err error) (string, map[string]string) {
	if e, ok := As(err); ok {
		return e.Reason, e.Metadata
	}
	st, ok := status.FromError(err)
	if !ok {
		return "", nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason, info.Metadata
		}
	}
	return "", nil
}

// clipLimit bounds how much of a client's input an error message quotes.
const clipLimit = 64

// Clip shortens client input quoted in an error message to 64 bytes, cut at
// a character boundary and marked with "…", so a huge or hostile value
// cannot bloat the error or split a character.
func Clip(s string) string { return text.Clip(s, clipLimit) }
