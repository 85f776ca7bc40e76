package gateway

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// handlers adapts a generated Register...HandlerClient to Backend.Register.
func handlers[C any](register func(context.Context, *runtime.ServeMux, C) error, newClient func(grpc.ClientConnInterface) C) func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
		return register(ctx, mux, newClient(cc))
	}
}

// earlyErrors is a backend connection on which a server stream that fails
// before its first message (an export refusing its request) fails like a
// unary call. grpc-gateway reads a stream's header before it answers: an
// error there goes to handleError, whose envelope carries the request id and
// nosniff, while an error inside the stream becomes grpc-gateway's own
// error chunk without them.
type earlyErrors struct{ grpc.ClientConnInterface }

func (c earlyErrors) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
	if err != nil || !desc.ServerStreams || desc.ClientStreams {
		return cs, err
	}
	out, ok := outputType(method)
	if !ok {
		return cs, nil
	}
	return &peekStream{ClientStream: cs, out: out}, nil
}

// outputType is the response message type of a full method name
// ("/pkg.Service/Method"), from the generated code the gateway links.
func outputType(method string) (protoreflect.MessageType, bool) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil, false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, false
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, false
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	return mt, err == nil
}

// peekStream receives the first message in Header(), so that a stream that
// fails before it reports the failure there; RecvMsg then hands it out.
// (Services send their header, the request id, before any message, so
// Header() alone says nothing of the outcome.)
type peekStream struct {
	grpc.ClientStream
	out   protoreflect.MessageType
	first proto.Message
}

func (s *peekStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	if err != nil {
		return nil, err
	}
	m := s.out.New().Interface()
	switch err := s.ClientStream.RecvMsg(m); {
	case err == nil:
		s.first = m
	case !errors.Is(err, io.EOF): // io.EOF, an empty stream, comes again from RecvMsg
		return nil, err
	}
	return md, nil
}

func (s *peekStream) RecvMsg(m any) error {
	if s.first == nil {
		return s.ClientStream.RecvMsg(m)
	}
	dst, ok := m.(proto.Message)
	if !ok {
		return errors.New("gateway: stream message is not a proto message")
	}
	proto.Reset(dst) // as RecvMsg's unmarshalling does
	proto.Merge(dst, s.first)
	s.first = nil
	return nil
}
