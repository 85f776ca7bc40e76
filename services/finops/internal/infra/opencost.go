package infra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/echopilot/echopilot/platform/apierr"
)

// allocation is what ReadOpenCost reads of one OpenCost allocation. Its
// totalCost counts as compute except pvCost (persistent volumes, where the
// databases live), which counts as database.
type allocation struct {
	Name       string `json:"name"`
	Properties struct {
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"properties"`
	Window struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"window"`
	TotalCost json.Number `json:"totalCost"`
	PVCost    json.Number `json:"pvCost"`
}

// ReadOpenCost reads an OpenCost /allocation response ({"code":200,
// "data":[{"<name>":{...}}, ...]}) into sums, one allocation at a time.
// OpenCost's own __idle__ and __unallocated__ entries carry no tenant
// label, so the rule leaves them unallocated.
func ReadOpenCost(r io.Reader, rule Rule, sums *Sums) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	bad := func(format string, args ...any) error {
		return apierr.InvalidArgument(ReasonFormat, format, args...)
	}
	if err := expect(dec, json.Delim('{')); err != nil {
		return bad("not a JSON object")
	}
	sawData := false
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return bad("malformed JSON")
		}
		switch k {
		case "data":
			if sawData {
				return bad("data appears twice")
			}
			sawData = true
			if err := readSteps(dec, rule, sums); err != nil {
				return err
			}
		case "code":
			var code int
			if err := dec.Decode(&code); err != nil || code != 200 {
				return bad("code is not 200")
			}
		default:
			var skip json.RawMessage // message, warning: small
			if err := dec.Decode(&skip); err != nil {
				return bad("malformed JSON")
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the response object")
	}
	if !sawData {
		return bad("no data")
	}
	return nil
}

// readSteps reads data: an array of objects (one per step of the window)
// of allocations by name.
func readSteps(dec *json.Decoder, rule Rule, sums *Sums) error {
	if err := expect(dec, json.Delim('[')); err != nil {
		return apierr.InvalidArgument(ReasonFormat, "data is not an array")
	}
	for step := 0; dec.More(); step++ {
		if err := expect(dec, json.Delim('{')); err != nil {
			return apierr.InvalidArgument(ReasonFormat, "data[%d] is not an object", step)
		}
		for dec.More() {
			name, err := dec.Token()
			if err != nil {
				return apierr.InvalidArgument(ReasonFormat, "data[%d]: malformed JSON", step)
			}
			var a allocation
			if err := dec.Decode(&a); err != nil {
				return apierr.InvalidArgument(ReasonFormat, "data[%d][%q]: not an allocation", step, apierr.Clip(fmt.Sprint(name)))
			}
			if err := addAllocation(a, rule, sums); err != nil {
				return at(fmt.Sprintf("data[%d][%q]", step, apierr.Clip(fmt.Sprint(name))), err)
			}
		}
		if _, err := dec.Token(); err != nil {
			return apierr.InvalidArgument(ReasonFormat, "data[%d]: malformed JSON", step)
		}
	}
	if _, err := dec.Token(); err != nil {
		return apierr.InvalidArgument(ReasonFormat, "data: malformed JSON")
	}
	return nil
}

func addAllocation(a allocation, rule Rule, sums *Sums) error {
	start, err := parseTime("window.start", a.Window.Start)
	if err != nil {
		return err
	}
	end, err := parseTime("window.end", a.Window.End)
	if err != nil {
		return err
	}
	total, err := ParseCost(a.TotalCost.String())
	if err != nil {
		return err
	}
	pv := int64(0)
	if a.PVCost != "" {
		if pv, err = ParseCost(a.PVCost.String()); err != nil {
			return err
		}
	}
	tenant, err := rule.Tenant(a.Properties.Labels, a.Properties.Namespace)
	if err != nil {
		return err
	}
	if err := sums.Add(tenant, Compute, start, end, total-pv); err != nil {
		return err
	}
	if pv == 0 {
		return nil
	}
	return sums.Add(tenant, Database, start, end, pv)
}

func expect(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != want {
		return fmt.Errorf("got %v, want %v", t, want)
	}
	return nil
}
