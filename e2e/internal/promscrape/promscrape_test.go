package promscrape

import (
	"strings"
	"testing"
)

func TestSum(t *testing.T) {
	fams, err := Parse(strings.NewReader(`# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_service="a",grpc_code="OK"} 3
grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_code="OK"} 100
grpc_server_handled_total{grpc_service="b",grpc_code="OK"} 4
# TYPE up gauge
up 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fams.Sum("process_cpu_seconds_total", nil); !ok || v != 12.5 {
		t.Errorf("cpu = %v, %v", v, ok)
	}
	noHealth := func(l map[string]string) bool { return l["grpc_service"] != "grpc.health.v1.Health" }
	if v, ok := fams.Sum("grpc_server_handled_total", noHealth); !ok || v != 7 {
		t.Errorf("handled without health = %v, %v; want 7", v, ok)
	}
	if v, ok := fams.Sum("up", nil); !ok || v != 1 {
		t.Errorf("gauge = %v, %v", v, ok)
	}
	if _, ok := fams.Sum("missing", nil); ok {
		t.Error("a missing family was found")
	}
	if _, err := Parse(strings.NewReader("not a metric line {\n")); err == nil {
		t.Error("garbage parsed")
	}
}
