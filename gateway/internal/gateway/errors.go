package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/echopilot/echopilot/gateway/internal/restjson"
	restv1 "github.com/echopilot/echopilot/gen/go/echopilot/rest/v1"
)

// writeError writes one error in the envelope documented in the OpenAPI
// document: echopilot.rest.v1.ErrorResponse.
func writeError(w http.ResponseWriter, r *http.Request, httpStatus int, code codes.Code, reason, msg string, md map[string]string) {
	body, err := restjson.Marshal(&restv1.ErrorResponse{Error: &restv1.ErrorDetail{
		Code: int32(httpStatus), Status: codeName(code), Reason: reason, Message: msg,
		RequestId: r.Header.Get(requestIDHeader), Metadata: md,
	}})
	if err != nil { // only for NaN floats, which the envelope has none of
		httpStatus, body = http.StatusInternalServerError, []byte(`{"ok":false,"error":{"code":500,"status":"INTERNAL","reason":"INTERNAL","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

func codeName(c codes.Code) string {
	// codes.Code.String gives "PermissionDenied"; AIP-193 spells it PERMISSION_DENIED.
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// handleError is grpc-gateway's error hook: it maps the gRPC code to HTTP and
// keeps the service's ErrorInfo reason.
func handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	reason, msg, md := describe(st)
	writeError(w, r, runtime.HTTPStatusFromCode(st.Code()), st.Code(), reason, msg, md)
}

// describe is what the envelope says of st: the service's ErrorInfo reason
// and metadata, or a reason of our own for errors from the transport
// itself (backend unreachable) and from grpc-gateway's decoding; internal
// errors are masked.
func describe(st *status.Status) (reason, msg string, md map[string]string) {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason, md = info.Reason, info.Metadata
			break
		}
	}
	msg = st.Message()
	if reason == "" {
		switch st.Code() {
		case codes.Unavailable:
			reason, msg = "BACKEND_UNAVAILABLE", "the service behind this path is unavailable; retry later"
		case codes.DeadlineExceeded:
			reason, msg = "BACKEND_TIMEOUT", "the service behind this path did not answer in time"
		case codes.InvalidArgument:
			// grpc-gateway's own decoding errors (malformed JSON, bad query values).
			reason = "INVALID_REQUEST"
		case codes.Canceled:
			reason = "CANCELED"
		default:
			reason = codeName(st.Code())
		}
	}
	if st.Code() == codes.Internal || st.Code() == codes.Unknown {
		msg = "internal error"
		if reason == "" || reason == "UNKNOWN" {
			reason = "INTERNAL"
		}
	}
	return reason, msg, md
}

// streamError is the envelope of an error that ends a server stream (an
// export refused before its first chunk, or failing midway); grpc-gateway
// hands it to the marshaler as {"error": status}.
func streamError(v any) (*restv1.ErrorResponse, bool) {
	chunk, ok := v.(map[string]proto.Message)
	if !ok {
		return nil, false
	}
	sp, ok := chunk["error"].(*spb.Status)
	if !ok {
		return nil, false
	}
	st := status.FromProto(sp)
	reason, msg, md := describe(st)
	return &restv1.ErrorResponse{Error: &restv1.ErrorDetail{
		Code: int32(runtime.HTTPStatusFromCode(st.Code())), Status: codeName(st.Code()), Reason: reason, Message: msg, Metadata: md,
	}}, true
}

// handleRoutingError answers unknown paths and wrong methods in the envelope.
func handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		writeError(w, r, httpStatus, codes.Unimplemented, "METHOD_NOT_ALLOWED", r.Method+" is not allowed on "+r.URL.Path, nil)
	case http.StatusNotFound:
		writeError(w, r, httpStatus, codes.NotFound, "PATH_NOT_FOUND", "no such path: "+r.URL.Path, nil)
	default:
		writeError(w, r, httpStatus, codes.InvalidArgument, "INVALID_REQUEST", http.StatusText(httpStatus), nil)
	}
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
