// Package devstack builds and runs the suite's real binaries as child
// processes: `make run` uses it for the local stack and the end-to-end tests
// use it to start what they check. Both therefore run exactly what ships.
package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Build compiles the given main packages into outDir, from the workspace root.
func Build(ctx context.Context, root, outDir string, pkgs ...string) error {
	args := append([]string{"build", "-o", outDir + string(os.PathSeparator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", pkgs, err, out.String())
	}
	return nil
}

// Proc is one running binary.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Start runs bin with env added to the current environment; its output goes to out.
func Start(name, bin string, env []string, out io.Writer, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: Ctrl-C in the terminal reaches us, and we stop the
	// children in order instead of all at once.
	// Pdeathsig: if this process dies without stopping them, they stop too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to grace before SIGKILL.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var exit *exec.ExitError
		if errors.As(p.err, &exit) && !exit.Success() {
			return fmt.Errorf("%s exited: %w", p.Name, p.err)
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v; killed", p.Name, grace)
	}
}

// Kill sends SIGKILL (for fault tests) and waits for the exit.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// WaitGRPC waits until addr answers grpc.health.v1 with SERVING, dialed
// with opts (plaintext when none).
func WaitGRPC(ctx context.Context, addr string, p *Proc, opts ...grpc.DialOption) error {
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	return poll(ctx, p, func(ctx context.Context) bool {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

// WaitHTTP waits until url answers 200.
func WaitHTTP(ctx context.Context, url string, p *Proc) error {
	return poll(ctx, p, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func poll(ctx context.Context, p *Proc, ready func(context.Context) bool) error {
	for {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited during start: %v", p.Name, p.err)
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		ok := ready(cctx)
		cancel()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreePorts returns n TCP ports that were free a moment ago on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// prefixWriter writes each line of a child's output with its name in front.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

// PrefixWriter returns a writer for a child's combined output; writers made
// with the same mutex never interleave within a line.
func PrefixWriter(w io.Writer, mu *sync.Mutex, name string) io.Writer {
	return &prefixWriter{mu: mu, w: w, prefix: fmt.Sprintf("%-8s| ", name)}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

// Abs returns path made absolute against the current directory.
func Abs(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}
