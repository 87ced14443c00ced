package config

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and keeps its promises on any input: either a Config that holds the
// rules, or Errors with a position for each. The seeds in testdata/fuzz/FuzzParse run as ordinary tests; run
// `go test -fuzz=FuzzParse ./internal/config/` to search further.
func FuzzParse(f *testing.F) {
	f.Add([]byte("plans:\n  free: { default: true }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("a Config with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %v", err)
			}
			for _, d := range errs {
				if strings.Contains(d.Message, internalError) {
					t.Fatalf("panic while parsing: %s", d.Message)
				}
				if d.Line < 1 || d.Col < 1 || d.File != "f.yaml" || d.Message == "" {
					t.Fatalf("diagnostic without a position: %#v", d)
				}
			}
			return
		}
		checkValid(t, cfg)
		// Parsing is deterministic.
		again, err := Parse("f.yaml", data)
		if err != nil || len(again.Plans) != len(cfg.Plans) || len(again.Features) != len(cfg.Features) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

// fuzzPeriodRE is the period pattern of tollgate.define_feature (sql/define_feature.sql), written out again.
var fuzzPeriodRE = regexp.MustCompile(`^(?:(month|billing|lifetime)|([1-9][0-9]{0,5})([dh])|rolling ([1-9][0-9]{0,3})d)$`)

// checkValid asserts the invariants of a Config that Parse accepted.
func checkValid(t *testing.T, cfg *Config) {
	t.Helper()
	defaults := 0
	plans := map[string]bool{}
	for _, p := range cfg.Plans {
		if !nameRE.MatchString(p.Name) || plans[p.Name] || p.Rank < 0 {
			t.Fatalf("bad plan %#v", p)
		}
		plans[p.Name] = true
		if p.Default {
			defaults++
		}
	}
	if defaults != 1 {
		t.Fatalf("%d default plans", defaults)
	}
	routes := map[string]bool{}
	for _, f := range cfg.Features {
		if !nameRE.MatchString(f.Name) || !fuzzPeriodRE.MatchString(f.Period) || (f.Enforcement != "hard" && f.Enforcement != "soft") ||
			len(f.Limits) == 0 {
			t.Fatalf("bad feature %#v", f)
		}
		for _, l := range f.Limits {
			if !plans[l.Plan] || (l.Quota != nil && *l.Quota < 0) {
				t.Fatalf("bad limit %#v", l)
			}
		}
		for i, n := range f.NotifyAt {
			if n < 1 || n > 100 || (i > 0 && f.NotifyAt[i-1] >= n) {
				t.Fatalf("bad notify_at %v", f.NotifyAt)
			}
		}
		for _, r := range f.Routes {
			if routes[r.String()] || !strings.HasPrefix(r.Pattern, "/") || strings.ContainsAny(r.Method+r.Pattern, " \t\n") {
				t.Fatalf("bad route %#v", r)
			}
			routes[r.String()] = true
		}
	}
	if cfg.Stripe.TrialPrompt != "" && !nameRE.MatchString(cfg.Stripe.TrialPrompt) {
		t.Fatalf("bad trial prompt %q", cfg.Stripe.TrialPrompt)
	}
	if cfg.Email.RatePerSecond <= 0 || cfg.Email.MaxAttempts < 1 || cfg.Stripe.RatePerSecond <= 0 ||
		cfg.Stripe.ReconcileInterval <= 0 || cfg.Sidecar.PollInterval <= 0 || cfg.Conversions.AttributionWindow <= 0 {
		t.Fatalf("bad settings %#v", cfg)
	}
}
