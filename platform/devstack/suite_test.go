package devstack

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestReplicaPortsAndNames(t *testing.T) {
	svcs := Services()
	opt := Options{GatewayPort: 8080, BasePort: 9101, Replicas: 2}
	_, admin, grpc, metrics, err := choosePorts(opt, svcs)
	if err != nil {
		t.Fatal(err)
	}
	// queue (offset 3): 9104 and 9114; metrics 9204 and 9214.
	if grpc[3] != 9104 || grpc[len(svcs)+3] != 9114 || metrics[len(svcs)+3] != 9214 || admin != 9280 {
		t.Fatalf("grpc %v metrics %v admin %d", grpc, metrics, admin)
	}
	_, admin, grpc, metrics, err = choosePorts(Options{Replicas: 3}, svcs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{admin: true}
	for _, p := range append(grpc, metrics...) {
		if seen[p] {
			t.Fatalf("port %d chosen twice", p)
		}
		seen[p] = true
	}
	if len(grpc) != 3*len(svcs) {
		t.Fatalf("%d gRPC ports for 3 replicas of %d services", len(grpc), len(svcs))
	}
	if ReplicaName("queue", 0) != "queue" || ReplicaName("queue", 1) != "queue-2" {
		t.Fatal(ReplicaName("queue", 1))
	}
}

func TestReplicasNeedPostgres(t *testing.T) {
	sqlite := func(svc string) (string, string) { return "sqlite:///tmp/" + svc + ".db", "" }
	pg := func(svc string) (string, string) { return "postgres://127.0.0.1/" + svc, "" }
	opt := Options{Database: sqlite}
	if err := checkReplicas(&opt, Services()); err != nil || opt.Replicas != 1 {
		t.Fatalf("default: %v, %d replicas", err, opt.Replicas)
	}
	opt = Options{Database: sqlite, Replicas: 2}
	if err := checkReplicas(&opt, Services()); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("two on SQLite: %v", err)
	}
	opt = Options{Database: pg, Replicas: 2}
	if err := checkReplicas(&opt, Services()); err != nil {
		t.Fatal(err)
	}
	opt = Options{Database: pg, Replicas: 8, GatewayPort: 8080, BasePort: 9101}
	if err := checkReplicas(&opt, Services()); err == nil {
		t.Fatal("8 replicas on fixed ports accepted")
	}
}

func TestBinaryOverride(t *testing.T) {
	s := &Stack{opt: Options{BinDir: "/bin/new", Binary: func(name string) string {
		if name == "queue-2" {
			return "/bin/old/queue"
		}
		return ""
	}}, bin: map[string]string{"queue": "queue", "queue-2": "queue", "gateway": "gateway"}}
	for name, want := range map[string]string{"queue": "/bin/new/queue", "queue-2": "/bin/old/queue", "gateway": "/bin/new/gateway"} {
		if got := s.binary(name); got != want {
			t.Errorf("binary(%s) = %s, want %s", name, got, want)
		}
	}
	s.opt.Binary = nil
	if got := s.binary("queue-2"); got != "/bin/new/queue" {
		t.Errorf("no override: binary(queue-2) = %s", got)
	}
}

// A port another socket holds is a clash (Up starts again on other
// ports); a port free again after its process stopped is not.
func TestPortTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	free, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", free[i]) }
	s := &Stack{
		GRPCAddrs:    map[string]string{"queue": addr(0), "audit": held.Addr().String()},
		MetricsAddrs: map[string]string{"queue": addr(1), "audit": addr(2)},
	}
	if s.portTaken("queue") {
		t.Error("queue's free ports reported taken")
	}
	if !s.portTaken("audit") {
		t.Error("audit's held gRPC port not reported taken")
	}
	s.GatewayURL, s.GatewayAdminURL = "http://"+held.Addr().String(), "http://"+addr(2)
	if !s.portTaken("gateway") {
		t.Error("the gateway's held port not reported taken")
	}
}
