// Command finops-import imports infrastructure cost from a real source
// into the finops database, replacing the rate card for the days it
// covers:
//
//	finops-import --format focus|opencost [--tenant-label tenant] [--namespace-prefix echopilot-] [--dry-run] <file | URL | ->
//
// A FOCUS 1.x CSV (any cloud's cost export) or an OpenCost /allocation
// response is read as a stream, mapped to tenants by a label or namespace
// rule, and summed per tenant and UTC day (see internal/infra). Cost no
// rule maps is kept as unallocated (the reports' platform cost). Each day
// the input charges is replaced as a whole: importing the same period
// again gives the same result, never double. An URL is fetched through
// the outbound guard: private destinations only when --outbound-allow
// (ECHOPILOT_OUTBOUND_ALLOW) lists them.
//
// A command, not an admin RPC: exports are large files on the operator's
// side (a bucket, a cron job's download), streamed straight into one
// transaction with no upload size limit or request deadline to fit in, and
// the service's API surface stays as it is.
//
// Exit status: 0 imported (or checked, --dry-run); 1 the input was refused
// (the reason code is printed; nothing was written); 2 usage, I/O or
// database error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/netguard"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/infra"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Report is what an import did, printed as JSON.
type Report struct {
	Source string `json:"source"`
	Format string `json:"format"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Days are the UTC days replaced, YYYY-MM-DD.
	Days              []string `json:"days"`
	Tenants           int      `json:"tenants"`
	AllocatedMicros   int64    `json:"allocated_micros"`
	UnallocatedMicros int64    `json:"unallocated_micros"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("finops-import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		format = fs.String("format", "", "focus (a FOCUS 1.x CSV) or opencost (an OpenCost /allocation JSON response)")
		dbURL  = fs.String("database-url", os.Getenv("ECHOPILOT_DATABASE_URL"), "the finops database (default $ECHOPILOT_DATABASE_URL)")
		rule   infra.Rule
		allow  = fs.String("outbound-allow", os.Getenv("ECHOPILOT_OUTBOUND_ALLOW"), "CIDRs, addresses and host names an URL source may reach besides public ones (default $ECHOPILOT_OUTBOUND_ALLOW)")
		dry    = fs.Bool("dry-run", false, "read and validate, report, write nothing")
		wait   = fs.Duration("timeout", 10*time.Minute, "bound of fetching and importing")
	)
	fs.StringVar(&rule.Label, "tenant-label", "", "label (FOCUS tag, OpenCost label) whose value is the tenant id")
	fs.StringVar(&rule.NamespacePrefix, "namespace-prefix", "", "namespace prefix: a namespace <prefix><tenant> is the tenant's (FOCUS: the \"namespace\" tag)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := func(msg string) int {
		fmt.Fprintln(stderr, "finops-import:", msg)
		return 2
	}
	switch {
	case fs.NArg() != 1:
		return usage("one source (file, URL or -) expected")
	case *format != "focus" && *format != "opencost":
		return usage("--format must be focus or opencost")
	case rule.Label == "" && rule.NamespacePrefix == "":
		return usage("a mapping rule is needed: --tenant-label and/or --namespace-prefix")
	case *dbURL == "" && !*dry:
		return usage("--database-url (or ECHOPILOT_DATABASE_URL) is needed")
	}
	allowList, err := netguard.ParseAllowList(*allow)
	if err != nil {
		return usage("--outbound-allow: " + err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	src := fs.Arg(0)
	in, err := infra.Open(ctx, src, &netguard.Guard{Allow: allowList}, *wait)
	if err != nil {
		fmt.Fprintln(stderr, "finops-import:", err)
		return 2
	}
	defer in.Close()

	sums := infra.NewSums()
	read := infra.ReadFOCUS
	if *format == "opencost" {
		read = infra.ReadOpenCost
	}
	if err := read(in, rule, sums); err != nil {
		if e, ok := apierr.As(err); ok {
			fmt.Fprintf(stderr, "finops-import: refused: %s: %s\n", e.Reason, e.Message)
			return 1
		}
		fmt.Fprintln(stderr, "finops-import: read:", err)
		return 2
	}
	days, costs := sums.Days(), sums.Costs()
	rep := report(src, *format, days, costs)
	rep.DryRun = *dry
	if !*dry {
		if err := write(ctx, *dbURL, *format+" "+redact(src), days, costs); err != nil {
			fmt.Fprintln(stderr, "finops-import:", err)
			return 2
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return 2
	}
	return 0
}

func write(ctx context.Context, dbURL, source string, days []int64, costs []domain.InfraCost) error {
	db, err := pstore.Open(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	st := store.New(db)
	defer st.Close()
	return st.ImportInfra(ctx, source, days, costs)
}

func report(src, format string, days []int64, costs []domain.InfraCost) Report {
	rep := Report{Source: redact(src), Format: format, Days: make([]string, len(days))}
	for i, d := range days {
		rep.Days[i] = domain.DayStart(d).Format(time.DateOnly)
	}
	tenants := make(map[string]bool)
	for _, c := range costs {
		if c.TenantID == "" {
			rep.UnallocatedMicros += c.ComputeMicros + c.DatabaseMicros
			continue
		}
		tenants[c.TenantID] = true
		rep.AllocatedMicros += c.ComputeMicros + c.DatabaseMicros
	}
	rep.Tenants = len(tenants)
	return rep
}

// redact drops an URL's query (a presigned link's signature) from what is
// stored and printed.
func redact(src string) string {
	if i := strings.IndexByte(src, '?'); i >= 0 && (strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")) {
		return src[:i]
	}
	return src
}
