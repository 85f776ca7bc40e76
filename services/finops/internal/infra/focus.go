package infra

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/echopilot/echopilot/platform/apierr"
)

// FOCUS columns read. Required: ChargePeriodStart, ChargePeriodEnd and
// one of EffectiveCost (preferred: amortized, after discounts) and
// BilledCost. Optional: BillingCurrency (must be USD), ServiceCategory
// ("Databases" counts as database, anything else as compute) and Tags (a
// JSON object of strings; the namespace rule reads its "namespace").
const (
	colStart    = "ChargePeriodStart"
	colEnd      = "ChargePeriodEnd"
	colEff      = "EffectiveCost"
	colBilled   = "BilledCost"
	colCurrency = "BillingCurrency"
	colCategory = "ServiceCategory"
	colTags     = "Tags"
)

// NamespaceTag is the tag the namespace rule reads in a FOCUS row.
const NamespaceTag = "namespace"

// ReadFOCUS reads a FOCUS CSV into sums, one row at a time.
func ReadFOCUS(r io.Reader, rule Rule, sums *Sums) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return apierr.InvalidArgument(ReasonFormat, "header: %s", csvError(err))
	}
	col := make(map[string]int, len(head))
	for i, h := range head {
		col[strings.TrimPrefix(h, "\ufeff")] = i
	}
	for _, c := range []string{colStart, colEnd} {
		if _, ok := col[c]; !ok {
			return apierr.InvalidArgument(ReasonFormat, "header: no %s column", c)
		}
	}
	costCol, ok := col[colEff]
	if !ok {
		if costCol, ok = col[colBilled]; !ok {
			return apierr.InvalidArgument(ReasonFormat, "header: neither %s nor %s", colEff, colBilled)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return rec[i]
		}
		return ""
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// FieldPos is only valid after a record was read.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return at(fmt.Sprintf("line %d", pe.Line), apierr.InvalidArgument(ReasonFormat, "%s", csvError(err)))
			}
			return fmt.Errorf("read: %w", err)
		}
		if err := focusRow(rec, get, costCol, rule, sums); err != nil {
			line, _ := cr.FieldPos(0)
			return at(fmt.Sprintf("line %d", line), err)
		}
	}
}

func focusRow(rec []string, get func([]string, string) string, costCol int, rule Rule, sums *Sums) error {
	for _, f := range rec {
		if len(f) > maxFieldLen {
			return apierr.InvalidArgument(ReasonFormat, "a field longer than %d bytes", maxFieldLen)
		}
	}
	if c := get(rec, colCurrency); c != "" && !strings.EqualFold(c, "USD") {
		return apierr.InvalidArgument(ReasonCurrency, "BillingCurrency %q, only USD is reported", apierr.Clip(c))
	}
	start, err := parseTime(colStart, get(rec, colStart))
	if err != nil {
		return err
	}
	end, err := parseTime(colEnd, get(rec, colEnd))
	if err != nil {
		return err
	}
	cost, err := ParseCost(rec[costCol])
	if err != nil {
		return err
	}
	var labels map[string]string
	if t := get(rec, colTags); t != "" {
		if err := json.Unmarshal([]byte(t), &labels); err != nil {
			return apierr.InvalidArgument(ReasonFormat, "Tags is not a JSON object of strings")
		}
	}
	tenant, err := rule.Tenant(labels, labels[NamespaceTag])
	if err != nil {
		return err
	}
	kind := Compute
	if get(rec, colCategory) == "Databases" {
		kind = Database
	}
	return sums.Add(tenant, kind, start, end, cost)
}

// csvError drops encoding/csv's own position prefix: ours says the line.
func csvError(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if errors.Is(err, io.EOF) {
		return "empty input"
	}
	return err.Error()
}
