package restjson

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// QueryParser fills requests from query parameters as grpc-gateway's
// default parser does, except for enum fields, which take the JSON names
// of their values (?status=queued), as bodies do. The default parser
// takes only proto names and numbers and refuses anything else itself,
// where the service used to refuse an unknown string with its own reason
// code; here an unknown string becomes unknownEnumNumber and still reaches
// the service.
type QueryParser struct{}

// Parse implements runtime.QueryParameterParser.
func (QueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	m := msg.ProtoReflect()
	var rest url.Values // values without the enum fields, made on the first
	set := map[string]bool{}
	for key, vals := range values {
		path := enumFieldPath(m.Descriptor(), key)
		if path == nil {
			continue
		}
		names := make([]string, len(path))
		for i, fd := range path {
			names[i] = string(fd.Name())
		}
		if filter.HasCommonPrefix(names) {
			continue // bound from the path; the default parser ignores it too
		}
		// The proto and the JSON name of a field are two keys for it.
		name := strings.Join(names, ".")
		if set[name] {
			return fmt.Errorf("duplicate field %q", name)
		}
		set[name] = true
		if err := setEnum(m, path, vals); err != nil {
			return err
		}
		if rest == nil {
			rest = make(url.Values, len(values))
			for k, v := range values {
				rest[k] = v
			}
		}
		delete(rest, key)
	}
	if rest == nil {
		rest = values
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, rest, filter)
}

// enumFieldPath resolves key (a dotted path of proto or JSON names, as the
// default parser reads it) to the fields it walks through, when it ends at
// an enum field or list of enums outside a oneof; otherwise nil.
func enumFieldPath(md protoreflect.MessageDescriptor, key string) []protoreflect.FieldDescriptor {
	if strings.ContainsAny(key, "[]") {
		return nil // map syntax: no map of this API has enum values
	}
	parts := strings.Split(key, ".")
	path := make([]protoreflect.FieldDescriptor, 0, len(parts))
	for i, part := range parts {
		fd := md.Fields().ByTextName(part)
		if fd == nil {
			fd = md.Fields().ByJSONName(part)
		}
		if fd == nil {
			return nil
		}
		path = append(path, fd)
		if i == len(parts)-1 {
			break
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return nil
		}
		md = fd.Message()
	}
	leaf := path[len(path)-1]
	if leaf.Kind() != protoreflect.EnumKind || leaf.IsMap() {
		return nil
	}
	if od := leaf.ContainingOneof(); od != nil && !od.IsSynthetic() {
		return nil
	}
	return path
}

func setEnum(m protoreflect.Message, path []protoreflect.FieldDescriptor, vals []string) error {
	for _, fd := range path[:len(path)-1] {
		m = m.Mutable(fd).Message()
	}
	fd := path[len(path)-1]
	if fd.IsList() {
		l := m.Mutable(fd).List()
		for _, v := range vals {
			l.Append(protoreflect.ValueOfEnum(EnumNumber(fd.Enum(), v)))
		}
		return nil
	}
	if len(vals) != 1 {
		return fmt.Errorf("too many values for field %q: %s", fd.Name(), strings.Join(vals, ", "))
	}
	m.Set(fd, protoreflect.ValueOfEnum(EnumNumber(fd.Enum(), vals[0])))
	return nil
}
