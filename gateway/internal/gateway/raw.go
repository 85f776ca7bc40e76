package gateway

import (
	"context"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// RawRoute is a path grpc-gateway's generated handler cannot serve: a
// webhook whose body must reach the service byte for byte, because a
// signature covers the raw bytes (grpc-gateway would decode and re-encode
// it), or a response that is not JSON (a redirect). The route replaces the
// generated handler of the same path (a later registration wins), while
// the proto's google.api.http rule still documents it in /openapi.json.
type RawRoute struct {
	Method, Path string
	// FullMethod is the gRPC method, e.g. finopsv1.FinOpsService_HandleStripeWebhook_FullMethodName.
	FullMethod string
	// Call sends the raw body and what it needs of the request (path
	// parameters, headers, query) to the service.
	Call func(ctx context.Context, conn *grpc.ClientConn, in RawRequest, opts ...grpc.CallOption) (proto.Message, error)
	// Respond, when set, writes a successful response instead of the JSON
	// rendering of the message.
	Respond func(w http.ResponseWriter, r *http.Request, resp proto.Message)
}

// RawRequest is what a RawRoute's Call gets of the HTTP request.
type RawRequest struct {
	Body   []byte
	Params map[string]string // path parameters, by name
	*http.Request
}

// handleRaw registers rr on mux, calling the backend over conn.
func handleRaw(mux *runtime.ServeMux, conn *grpc.ClientConn, rr RawRoute) error {
	return mux.HandlePath(rr.Method, rr.Path, func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		_, out := runtime.MarshalerForRequest(mux, r)
		ctx, err := runtime.AnnotateContext(r.Context(), mux, r, rr.FullMethod, runtime.WithHTTPPathPattern(rr.Path))
		if err != nil {
			runtime.HTTPError(r.Context(), mux, out, w, r, err)
			return
		}
		// limitBody has already read and bounded the body.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		var md runtime.ServerMetadata
		resp, err := rr.Call(ctx, conn, RawRequest{Body: body, Params: params, Request: r},
			grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
		ctx = runtime.NewServerMetadataContext(ctx, md)
		switch {
		case err != nil:
			runtime.HTTPError(ctx, mux, out, w, r, err)
		case rr.Respond != nil:
			rr.Respond(w, r, resp)
		default:
			runtime.ForwardResponseMessage(ctx, mux, out, w, r, resp)
		}
	})
}
