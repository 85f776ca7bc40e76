package restjson

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Marshaler plugs the encoder into grpc-gateway. Requests are decoded with
// protojson, which accepts numbers or strings for int64 and both snake_case
// and lowerCamelCase names; unknown fields are refused so typos surface.
// Enum fields take the JSON names of their values (see numberEnums).
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

// NewDecoder reads request bodies as runtime.JSONPb does, with enum seed
// strings translated.
func (m *Marshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		pm, ok := v.(proto.Message)
		if !ok {
			return runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: m.UnmarshalOptions}.Decode(v)
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return err // unwrapped: grpc-gateway tells io.EOF (no body) apart
		}
		raw, err := numberEnums(raw, pm.ProtoReflect().Descriptor())
		if err != nil {
			return err
		}
		return m.UnmarshalOptions.Unmarshal(raw, pm)
	})
}

// Unmarshal decodes the first JSON value of data into v as NewDecoder does.
func (m *Marshaler) Unmarshal(data []byte, v any) error {
	return m.NewDecoder(bytes.NewReader(data)).Decode(v)
}
