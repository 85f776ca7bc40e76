package apidoc

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/echopilot/echopilot/gateway/internal/restjson"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1" // the API's descriptors, for protoregistry
	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/rest/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

// apiFiles calls fn for every file of the API's protos.
func apiFiles(fn func(protoreflect.FileDescriptor)) {
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "echopilot.") {
			fn(fd)
		}
		return true
	})
}

// enumJSONNames maps the value names of every enum of the API's protos to
// their JSON names (restjson.EnumJSONName). Value names are unique within a
// package, and the rule gives a value the same JSON name wherever it is.
func enumJSONNames() map[string]string {
	names := map[string]string{}
	var add func(enums protoreflect.EnumDescriptors, msgs protoreflect.MessageDescriptors)
	add = func(enums protoreflect.EnumDescriptors, msgs protoreflect.MessageDescriptors) {
		for i := 0; i < enums.Len(); i++ {
			values := enums.Get(i).Values()
			for j := 0; j < values.Len(); j++ {
				v := values.Get(j)
				names[string(v.Name())], _ = restjson.EnumJSONName(enums.Get(i), v.Number())
			}
		}
		for i := 0; i < msgs.Len(); i++ {
			add(msgs.Get(i).Enums(), msgs.Get(i).Messages())
		}
	}
	apiFiles(func(fd protoreflect.FileDescriptor) { add(fd.Enums(), fd.Messages()) })
	return names
}

// policies maps each RPC's operationId (Service_Method, the plugin's) to
// its access policy.
func policies() map[string]*authv1.Policy {
	out := map[string]*authv1.Policy{}
	apiFiles(func(fd protoreflect.FileDescriptor) {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				p, _ := proto.GetExtension(md.Options(), authv1.E_Policy).(*authv1.Policy)
				out[string(sd.Name())+"_"+string(md.Name())] = p
			}
		}
	})
	return out
}

// messageDefs maps protoc-gen-openapiv2's definition names (the package's
// last element, then the message's names: "v1Retention") to the API's
// messages.
func messageDefs() map[string]protoreflect.MessageDescriptor {
	out := map[string]protoreflect.MessageDescriptor{}
	var add func(prefix string, msgs protoreflect.MessageDescriptors)
	add = func(prefix string, msgs protoreflect.MessageDescriptors) {
		for i := 0; i < msgs.Len(); i++ {
			md := msgs.Get(i)
			out[prefix+string(md.Name())] = md
			add(prefix+string(md.Name()), md.Messages())
		}
	}
	apiFiles(func(fd protoreflect.FileDescriptor) {
		pkg := string(fd.Package())
		add(pkg[strings.LastIndex(pkg, ".")+1:], fd.Messages())
	})
	return out
}

// wellKnownFields lists, by definition name, the fields of each message
// that hold a google.protobuf message.
func wellKnownFields() map[string][]string {
	out := map[string][]string{}
	for name, md := range messageDefs() {
		for j := 0; j < md.Fields().Len(); j++ {
			fd := md.Fields().Get(j)
			if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && fd.Message().ParentFile().Package() == "google.protobuf" {
				out[name] = append(out[name], string(fd.Name()))
			}
		}
	}
	return out
}

// alwaysWritten lists, by definition name, the fields restjson writes in
// every rendering of the message: all but the members of a oneof, of which
// only the one set is written.
func alwaysWritten() map[string][]string {
	out := map[string][]string{}
	for name, md := range messageDefs() {
		fields := []string{}
		for j := 0; j < md.Fields().Len(); j++ {
			fd := md.Fields().Get(j)
			if od := fd.ContainingOneof(); od == nil || od.IsSynthetic() {
				fields = append(fields, string(fd.Name()))
			}
		}
		out[name] = fields
	}
	return out
}
