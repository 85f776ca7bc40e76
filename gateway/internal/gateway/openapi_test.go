package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/echopilot/echopilot/gateway/internal/restjson"
)

// Every RPC of the API answers with a message the envelope fits: no field
// of its own named "ok" (MarshalOK would refuse it), or an HttpBody, whose
// bytes go out as they are.
func TestEveryResponseTakesTheEnvelope(t *testing.T) {
	n := 0 // the services' descriptors come with the handlers this package imports
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "echopilot.") {
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				out := methods.Get(j).Output()
				if out.FullName() == "google.api.HttpBody" {
					continue
				}
				n++
				b, err := restjson.MarshalOK(dynamicpb.NewMessage(out))
				if err != nil || !strings.HasPrefix(string(b), `{"ok":true`) {
					t.Errorf("%s: %s %v", methods.Get(j).FullName(), b, err)
				}
			}
		}
		return true
	})
	if n < 40 {
		t.Fatalf("checked %d responses; are the services registered?", n)
	}
}

// /openapi.json documents the "ok" the encoder adds to every JSON
// response, and none on exports' byte streams.
func TestOpenAPIDocumentsTheEnvelope(t *testing.T) {
	b, err := openAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths       map[string]map[string]json.RawMessage
		Definitions map[string]struct {
			Properties map[string]struct{ Type string }
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for p, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				Responses map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					}
				}
			}
			if json.Unmarshal(raw, &op) != nil {
				continue // not an operation (path-level parameters)
			}
			ref := op.Responses["200"].Schema.Ref
			if ref == "" || ref == httpBodyRef {
				continue
			}
			n++
			if ok := doc.Definitions[strings.TrimPrefix(ref, "#/definitions/")].Properties["ok"]; ok.Type != "boolean" {
				t.Errorf("%s %s: %s has no ok", method, p, ref)
			}
		}
	}
	if n < 40 {
		t.Fatalf("checked %d responses", n)
	}
	if _, ok := doc.Definitions["apiHttpBody"].Properties["ok"]; ok {
		t.Error("HttpBody, sent as raw bytes, documented with ok")
	}
	if doc.Definitions["v1ErrorResponse"].Properties["ok"].Type != "boolean" {
		t.Error("the error envelope lost its ok")
	}
}
