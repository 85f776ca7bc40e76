package gateway

import (
	"context"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// RawRoute is a webhook path whose body must reach the service byte for
// byte, because a signature covers the raw bytes: grpc-gateway would decode
// and re-encode it. The route replaces the generated handler of the same
// path (a later registration wins), while the proto's google.api.http rule
// still documents it in /openapi.json.
type RawRoute struct {
	Method, Path string
	// FullMethod is the gRPC method, e.g. finopsv1.FinOpsService_HandleStripeWebhook_FullMethodName.
	FullMethod string
	// Call sends the raw body and what it needs of the request (headers,
	// query) to the service.
	Call func(ctx context.Context, conn *grpc.ClientConn, body []byte, r *http.Request, opts ...grpc.CallOption) (proto.Message, error)
}

// handleRaw registers rr on mux, calling the backend over conn.
func handleRaw(mux *runtime.ServeMux, conn *grpc.ClientConn, rr RawRoute) error {
	return mux.HandlePath(rr.Method, rr.Path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
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
		resp, err := rr.Call(ctx, conn, body, r, grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
		ctx = runtime.NewServerMetadataContext(ctx, md)
		if err != nil {
			runtime.HTTPError(ctx, mux, out, w, r, err)
			return
		}
		runtime.ForwardResponseMessage(ctx, mux, out, w, r, resp)
	})
}
