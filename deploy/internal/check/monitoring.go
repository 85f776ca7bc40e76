package check

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// Where the alerts' runbooks live, and the prefix every runbook_url has.
const (
	runbookDoc    = "docs/operations.md"
	runbookPrefix = "https://github.com/echopilot/echopilot/blob/main/" + runbookDoc + "#"
	// metricsDir holds a list per deployable of the metric names its
	// binary registers, written by a test in its module (metricstest).
	metricsDir = "deploy/testdata/metrics"
	// dashboardLabel is Grafana's dashboard sidecar's default label.
	dashboardLabel = "grafana_dashboard"
)

// prometheusSeries are names Prometheus itself gives every target.
var prometheusSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}

// grafanaVars are the Grafana variables a panel query may use, and what
// stands in for them when the query is parsed.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// monitoring checks the alert rules and dashboards in the render: every
// rule parses with Prometheus's own rulefmt and every query with its
// PromQL parser, every metric they name is one a deployable registers (or
// a rule records), and every alert's runbook_url names a section of the
// operations guide. Production must have both.
func (c *checker) monitoring() {
	known, err := knownMetrics(c.repo)
	if err != nil {
		c.fail("monitoring", "%v", err)
		return
	}
	anchors, err := docAnchors(filepath.Join(c.repo.Root, runbookDoc))
	if err != nil {
		c.fail("monitoring", "%v", err)
		return
	}
	p := parser.NewParser(parser.Options{})
	for _, pr := range c.objs.PrometheusRules {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					known[r.Record] = true
				}
			}
		}
	}
	alerts := 0
	for _, pr := range c.objs.PrometheusRules {
		obj := "PrometheusRule/" + pr.Name
		groups, ok := c.ruleGroups(obj, pr, p)
		if !ok {
			continue
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				name := r.Record
				if r.Alert != "" {
					alerts++
					name = r.Alert
					c.alert(obj, r, anchors)
				}
				c.query(obj+" "+name, r.Expr, p, known)
			}
		}
	}
	dashboards := c.dashboards(p, known)
	if c.pol.Production && (alerts == 0 || dashboards == 0) {
		c.fail("monitoring", "production has %d alerts and %d dashboards: include components/monitoring", alerts, dashboards)
	}
}

// ruleGroups parses a PrometheusRule's spec as Prometheus parses a rule
// file: strictly, expressions and templates included.
func (c *checker) ruleGroups(obj string, pr *monitoringv1.PrometheusRule, p parser.Parser) (*rulefmt.RuleGroups, bool) {
	raw, err := json.Marshal(pr.Spec)
	if err == nil {
		raw, err = yaml.JSONToYAML(raw)
	}
	if err != nil {
		c.fail(obj, "%v", err)
		return nil, false
	}
	groups, errs := rulefmt.Parse(raw, false, model.LegacyValidation, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, e := range errs {
		c.fail(obj, "rulefmt: %v", e)
	}
	return groups, len(errs) == 0
}

// alert: a severity, a summary, and a runbook_url to a section that exists.
func (c *checker) alert(obj string, r rulefmt.Rule, anchors map[string]bool) {
	obj += " alert " + r.Alert
	if r.Labels["severity"] == "" {
		c.fail(obj, "no severity label")
	}
	if r.Annotations["summary"] == "" {
		c.fail(obj, "no summary annotation")
	}
	url := r.Annotations["runbook_url"]
	anchor, ok := strings.CutPrefix(url, runbookPrefix)
	switch {
	case !ok:
		c.fail(obj, "runbook_url %q: want %s<section>", url, runbookPrefix)
	case !anchors[anchor]:
		c.fail(obj, "runbook_url %q: %s has no section #%s", url, runbookDoc, anchor)
	}
}

// query parses expr and checks the metrics it selects exist.
func (c *checker) query(obj, expr string, p parser.Parser, known map[string]bool) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		c.fail(obj, "query %q: %v", expr, err)
		return
	}
	for _, name := range selected(e) {
		if !known[name] {
			c.fail(obj, "query %q: no deployable registers %s (see %s)", expr, name, metricsDir)
		}
	}
}

// selected returns the metric names e's selectors name.
func selected(e parser.Expr) []string {
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	return names
}

// dashboard is what the checks read of a Grafana dashboard.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a row's
}

var grafanaVar = regexp.MustCompile(`\$\{?\w+`)

// dashboards checks every dashboard ConfigMap and returns how many
// dashboards there are: an overview and one per deployable, uids unique.
func (c *checker) dashboards(p parser.Parser, known map[string]bool) int {
	uids := map[string]bool{}
	for _, cm := range c.objs.ConfigMaps {
		if cm.Labels[dashboardLabel] != "1" {
			continue
		}
		for key, data := range cm.Data {
			obj := "ConfigMap/" + cm.Name + " " + key
			var d dashboard
			if err := json.Unmarshal([]byte(data), &d); err != nil {
				c.fail(obj, "not a dashboard: %v", err)
				continue
			}
			if d.UID == "" || d.Title == "" || uids[d.UID] {
				c.fail(obj, "uid %q, title %q: want both, the uid unique", d.UID, d.Title)
			}
			uids[d.UID] = true
			var walk func([]panel)
			walk = func(ps []panel) {
				for _, pn := range ps {
					for _, t := range pn.Targets {
						q := grafanaVars.Replace(t.Expr)
						if v := grafanaVar.FindString(q); v != "" {
							c.fail(obj+" panel "+pn.Title, "query %q uses %s: only $__rate_interval, $__interval and $__range are checked", t.Expr, v)
							continue
						}
						c.query(obj+" panel "+pn.Title, q, p, known)
					}
					walk(pn.Panels)
				}
			}
			walk(d.Panels)
		}
	}
	if len(uids) > 0 {
		for _, name := range append([]string{"overview"}, c.repo.Names()...) {
			if !uids["echopilot-"+name] {
				c.fail("monitoring", "no dashboard with uid echopilot-%s", name)
			}
		}
	}
	return len(uids)
}

// knownMetrics reads every deployable's metric list; each must have one.
func knownMetrics(repo *Repo) (map[string]bool, error) {
	known := map[string]bool{}
	for _, n := range prometheusSeries {
		known[n] = true
	}
	for _, name := range repo.Names() {
		b, err := os.ReadFile(filepath.Join(repo.Root, metricsDir, name+".txt"))
		if err != nil {
			return nil, fmt.Errorf("%v: its module's metrics list test writes it (go test -run MetricsList -update-metrics)", err)
		}
		for _, l := range strings.Fields(string(b)) {
			known[l] = true
		}
	}
	return known, nil
}

// docAnchors returns the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation dropped, spaces as hyphens.
func docAnchors(file string) (map[string]bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	anchors := map[string]bool{}
	inCode := false
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		text, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "#")
		if inCode || !ok {
			continue
		}
		text = strings.TrimSpace(strings.TrimLeft(text, "#"))
		anchors[anchor(text)] = true
	}
	return anchors, nil
}

func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
