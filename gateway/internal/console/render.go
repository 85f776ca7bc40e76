package console

import (
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/echopilot/echopilot/platform/apierr"
)

// bar is one bar of a chart: Value, and Alt drawn beside it (0: none).
type bar struct {
	Label      string
	Value, Alt float64
}

// chart is a server-rendered SVG bar chart: geometry computed here, drawn
// by the chart template with no script and no inline style.
type chart struct {
	Width, Height    int
	Bars             []barGeom
	Max              float64
	Legend, AltLabel string
	Empty            bool
}

type barGeom struct {
	Label             string
	X, W, Y, H        float64
	AltX, AltY, AltH  float64
	Value, Alt        float64
	LabelX            float64
	ShowLabel, HasAlt bool
}

const chartW, chartH, chartPad = 720, 180, 20

// barChart lays out bars (a per-day series, per-tenant costs, per-minute
// requests) in a chartW×chartH box.
func barChart(bars []bar, legend, alt string) chart {
	ch := chart{Width: chartW + 48, Height: chartH + chartPad, Legend: legend, AltLabel: alt}
	for _, b := range bars {
		ch.Max = math.Max(ch.Max, math.Max(b.Value, b.Alt))
	}
	if len(bars) == 0 || ch.Max <= 0 {
		ch.Empty = true
		return ch
	}
	slot := float64(chartW) / float64(len(bars))
	w := math.Max(slot*0.4, 1)
	every := int(math.Ceil(float64(len(bars)) / 12)) // at most 12 labels
	for i, b := range bars {
		g := barGeom{Label: b.Label, Value: b.Value, Alt: b.Alt, X: float64(i) * slot, W: w, LabelX: float64(i)*slot + slot/2,
			ShowLabel: i%every == 0, HasAlt: b.Alt > 0}
		g.H = b.Value / ch.Max * chartH
		g.Y = chartH - g.H
		g.AltX = g.X + w
		g.AltH = b.Alt / ch.Max * chartH
		g.AltY = chartH - g.AltH
		ch.Bars = append(ch.Bars, g)
	}
	return ch
}

// errText is a backend error in words, for a section of a page that
// failed while the rest shows.
func errText(err error) string {
	if err == nil {
		return ""
	}
	st, _ := status.FromError(err)
	if r := apierr.Reason(err); r != "" {
		return r + ": " + st.Message()
	}
	return st.Code().String() + ": " + st.Message()
}

var funcs = template.FuncMap{
	"ts": func(t *timestamppb.Timestamp) string {
		if t == nil || !t.IsValid() || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
			return "—"
		}
		return t.AsTime().UTC().Format("2006-01-02 15:04:05Z")
	},
	"time":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04Z") },
	"money":  func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"pct":    func(v float64) string { return fmt.Sprintf("%.1f%%", v) },
	"num":    func(v float64) string { return fmt.Sprintf("%.4g", v) },
	"lower":  strings.ToLower,
	"status": statusName,
	"prio":   priorityName,
	"sev": func(s fmt.Stringer) string {
		return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
	},
	"link": func(path, tenant string) string {
		if tenant == "" {
			return path
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		return path + sep + "tenant=" + template.URLQueryEscaper(tenant)
	},
	"join": strings.Join,
	"f1":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
}

// parseTemplates parses layout.html with each page template, one set per
// page, so every page defines its own "content".
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/chart.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "chart" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		pages[name] = t
	}
	for name := range actions {
		if pages["confirm_"+name] == nil {
			return nil, fmt.Errorf("console: action %s has no template confirm_%s.html", name, name)
		}
	}
	return pages, nil
}
