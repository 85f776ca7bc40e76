// Package validate enforces the request contract declared in the protos: a
// field marked (google.api.field_behavior) = REQUIRED must be set. Handlers
// keep their domain checks; this removes the "is it there at all" boilerplate.
package validate

import (
	"context"
	"sync"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/echopilot/echopilot/platform/apierr"
)

// ReasonFieldRequired is the ErrorInfo reason for a missing required field.
const ReasonFieldRequired = "FIELD_REQUIRED"

// Checker caches the required fields of each message type.
type Checker struct {
	required sync.Map // protoreflect.FullName -> []protoreflect.FieldDescriptor
}

// Check returns an InvalidArgument error naming the first missing field.
func (c *Checker) Check(m proto.Message) error {
	return c.check(m.ProtoReflect(), "")
}

func (c *Checker) check(m protoreflect.Message, prefix string) error {
	for _, fd := range c.requiredFields(m.Descriptor()) {
		if !m.Has(fd) {
			path := prefix + string(fd.Name())
			return apierr.New(codes.InvalidArgument, ReasonFieldRequired, "%s is required", path).With("field", path)
		}
	}
	// Nested messages declare their own required fields (e.g. items of a batch).
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = c.check(l.Get(i).Message(), prefix+string(fd.Name())+"[].")
			}
			return err == nil
		}
		err = c.check(v.Message(), prefix+string(fd.Name())+".")
		return err == nil
	})
	return err
}

func (c *Checker) requiredFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if v, ok := c.required.Load(md.FullName()); ok {
		return v.([]protoreflect.FieldDescriptor)
	}
	var out []protoreflect.FieldDescriptor
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		behaviors, _ := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
		for _, b := range behaviors {
			if b == annotations.FieldBehavior_REQUIRED {
				out = append(out, fd)
				break
			}
		}
	}
	c.required.Store(md.FullName(), out)
	return out
}

// UnaryServerInterceptor rejects requests that lack a required field.
func (c *Checker) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok {
			if err := c.Check(m); err != nil {
				return nil, err
			}
		}
		return next(ctx, req)
	}
}

// StreamServerInterceptor checks every message a client sends.
func (c *Checker) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		return next(srv, &checkedStream{ServerStream: ss, c: c})
	}
}

type checkedStream struct {
	grpc.ServerStream
	c *Checker
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		return s.c.Check(pm)
	}
	return nil
}
