// Command apibreaking fails when the OpenAPI document changed in a way that
// breaks its clients since a base version (oasdiff's error-level checks:
// a path, parameter or response field removed, a type changed, a parameter
// made required...), unless the commit message carries the marker
// [api-breaking], which says the break is meant. `make api-breaking` runs
// it against the previous commit's document.
//
//	apibreaking -base old.json -revision new.json -message "$(git log -1 --format=%B)"
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oasdiff/oasdiff/checker"
	"github.com/oasdiff/oasdiff/diff"
	"github.com/oasdiff/oasdiff/formatters"
	"github.com/oasdiff/oasdiff/load"
)

// Marker in a commit message lets a breaking change through.
const Marker = "[api-breaking]"

func main() {
	base := flag.String("base", "", "the previous document")
	revision := flag.String("revision", "", "the new document")
	message := flag.String("message", "", "the commit message")
	flag.Parse()
	if *base == "" || *revision == "" {
		flag.Usage()
		os.Exit(2)
	}
	report, breaking, err := compare(*base, *revision)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apibreaking:", err)
		os.Exit(1)
	}
	switch {
	case !breaking:
		fmt.Println("OpenAPI document: no breaking change")
	case strings.Contains(*message, Marker):
		fmt.Printf("%s\nOpenAPI document: breaking changes allowed by %s in the commit message\n", report, Marker)
	default:
		fmt.Printf("%s\nOpenAPI document: breaking changes; if they are meant, say %s in the commit message\n", report, Marker)
		os.Exit(1)
	}
}

// compare reports the error-level changes from base to revision.
func compare(base, revision string) (report string, breaking bool, err error) {
	loader := openapi3.NewLoader()
	s1, err := load.NewSpecInfo(loader, load.NewSource(base))
	if err != nil {
		return "", false, err
	}
	s2, err := load.NewSpecInfo(loader, load.NewSource(revision))
	if err != nil {
		return "", false, err
	}
	d, sources, err := diff.GetPathsDiff(diff.NewConfig(), []*load.SpecInfo{s1}, []*load.SpecInfo{s2})
	if err != nil {
		return "", false, err
	}
	changes := checker.CheckBackwardCompatibilityUntilLevel(checker.NewConfig(checker.GetAllChecks()), d, sources, checker.ERR)
	if len(changes) == 0 {
		return "", false, nil
	}
	f, err := formatters.Lookup(string(formatters.FormatSingleLine), formatters.DefaultFormatterOpts())
	if err != nil {
		return "", false, err
	}
	opts := formatters.NewRenderOpts()
	opts.ColorMode = checker.ColorNever
	out, err := f.RenderChangelog(changes, opts)
	if err != nil {
		return "", false, err
	}
	return string(out), true, nil
}
