package restjson

import (
	"encoding/json"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Marshaler plugs the encoder into grpc-gateway. Requests are decoded with
// protojson, which accepts numbers or strings for int64 and both snake_case
// and lowerCamelCase names; unknown fields are refused so typos surface.
type Marshaler struct {
	runtime.JSONPb
}

// NewMarshaler returns the gateway's JSON marshaler.
func NewMarshaler() *Marshaler {
	return &Marshaler{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// Marshal writes responses in the envelope with "ok":true: only successful
// responses come through here. Errors, stream errors included, have their
// own writer, and HttpBody bodies (exports) never reach it.
func (m *Marshaler) Marshal(v any) ([]byte, error) {
	if pm, ok := v.(proto.Message); ok {
		return MarshalOK(pm)
	}
	return json.Marshal(v)
}

// ContentType is plain JSON with UTF-8.
func (m *Marshaler) ContentType(any) string { return "application/json; charset=utf-8" }
