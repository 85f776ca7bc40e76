package console

import (
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/echopilot/echopilot/platform/apierr"
)

// bar is one slot of a chart: one value per series, drawn side by side
// (the overview's requests and errors; FinOps' revenue, costs and profit).
type bar struct {
	Label  string
	Values []float64
}

// chart is a server-rendered SVG bar chart: geometry computed here, drawn
// by the chart template with no script and no inline style. Values below
// zero (a day's loss) hang under the zero line.
type chart struct {
	Width, Height int
	Bars          []barGeom
	Max, Min      float64
	Series        []seriesKey
	ZeroY         float64
	Empty         bool
}

// seriesKey is one series of a chart's legend; Class colours its bars.
type seriesKey struct{ Name, Class string }

type barGeom struct {
	Label     string
	Title     string
	LabelX    float64
	ShowLabel bool
	Rects     []rectGeom
}

type rectGeom struct {
	X, Y, W, H float64
	Class      string
}

const chartW, chartH, chartPad = 720, 180, 20

// barChart lays out bars (a per-day series, per-minute requests) in a
// chartW×chartH box, one colour per series name.
func barChart(bars []bar, series ...string) chart {
	ch := chart{Width: chartW + 48, Height: chartH + chartPad}
	for i, name := range series {
		ch.Series = append(ch.Series, seriesKey{Name: name, Class: "s" + strconv.Itoa(i)})
	}
	for _, b := range bars {
		for _, v := range b.Values {
			ch.Max, ch.Min = math.Max(ch.Max, v), math.Min(ch.Min, v)
		}
	}
	span := ch.Max - ch.Min
	if len(bars) == 0 || span <= 0 || len(series) == 0 {
		ch.Empty = true
		return ch
	}
	ch.ZeroY = ch.Max / span * chartH
	slot := float64(chartW) / float64(len(bars))
	w := math.Max(slot*0.8/float64(len(series)), 1)
	every := int(math.Ceil(float64(len(bars)) / 12)) // at most 12 labels
	for i, b := range bars {
		g := barGeom{Label: b.Label, LabelX: float64(i)*slot + slot/2, ShowLabel: i%every == 0}
		title := []string{b.Label + ":"}
		for k, v := range b.Values {
			if k >= len(series) {
				break
			}
			h := math.Abs(v) / span * chartH
			y := ch.ZeroY - h
			if v < 0 {
				y = ch.ZeroY
			}
			g.Rects = append(g.Rects, rectGeom{X: float64(i)*slot + float64(k)*w, Y: y, W: w, H: h, Class: "s" + strconv.Itoa(k)})
			title = append(title, series[k]+" "+strconv.FormatFloat(v, 'g', 6, 64))
		}
		g.Title = strings.Join(title, " ")
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
	"sev":    severityName,
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
		if a := actions[name]; (a.Do == nil) == (a.Show == nil) {
			return nil, fmt.Errorf("console: action %s needs exactly one of Do and Show", name)
		}
		if actions[name].Show != nil && pages["result_"+name] == nil {
			return nil, fmt.Errorf("console: action %s has no template result_%s.html", name, name)
		}
	}
	return pages, nil
}
