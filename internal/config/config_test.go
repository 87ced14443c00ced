package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const examplePath = "../../examples/tollgate.yaml"

func ptr(v int64) *int64 { return &v }

// parseErrors parses src and returns the diagnostics as "LINE:COL: message" strings.
func parseErrors(t *testing.T, src string) []string {
	t.Helper()
	cfg, err := Parse("t.yaml", []byte(src))
	require.Error(t, err, "want errors for:\n%s", src)
	require.Nil(t, cfg)
	var errs Errors
	require.True(t, errors.As(err, &errs))
	out := make([]string, len(errs))
	for i, d := range errs {
		require.Equal(t, "t.yaml", d.File)
		out[i] = strings.TrimPrefix(d.String(), "t.yaml:")
	}
	return out
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("t.yaml", []byte(src))
	require.NoError(t, err)
	return cfg
}

func TestLoadExample(t *testing.T) {
	t.Parallel()
	cfg, err := Load(examplePath)
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings)

	require.Equal(t, []Plan{
		{Name: "free", Default: true, Pos: Pos{12, 3}},
		{Name: "pro", StripePrices: []string{"price_pro_monthly", "price_pro_yearly"}, StripeProducts: []string{"prod_pro"}, Rank: 10, Pos: Pos{13, 3}},
	}, cfg.Plans)
	require.Equal(t, "free", cfg.DefaultPlan().Name)

	api, ok := cfg.Feature("api_calls")
	require.True(t, ok)
	require.Equal(t, "30d", api.Period)
	require.Equal(t, "hard", api.Enforcement)
	require.Equal(t, []int{80, 100}, api.NotifyAt)
	require.Equal(t, "You've reached your free tier limit. Upgrade to continue.", api.Message)
	require.Equal(t, "upgrade_prompt", api.UpgradePrompt)
	require.Len(t, api.Limits, 2)
	require.Equal(t, ptr(100), api.Limits[0].Quota)
	require.Nil(t, api.Limits[1].Quota)
	require.Equal(t, []string{"POST /api/features/*"}, []string{api.Routes[0].String()})

	sso, ok := cfg.Feature("sso")
	require.True(t, ok)
	require.Equal(t, "lifetime", sso.Period, "an on/off feature defaults to lifetime")
	require.Equal(t, []int{100}, sso.NotifyAt)
	require.Equal(t, []Limit{{Plan: "free", Quota: ptr(0), Pos: sso.Limits[0].Pos}, {Plan: "pro", Pos: sso.Limits[1].Pos}}, sso.Limits)

	require.Equal(t, Email{Provider: "log", From: "Acme <billing@acme.test>", UpgradeURL: "https://acme.test/pricing", RatePerSecond: 2, MaxAttempts: 8}, cfg.Email)
	require.Equal(t, Stripe{ReconcileInterval: time.Hour, RatePerSecond: 25}, cfg.Stripe)
	require.Equal(t, Sidecar{Listen: ":8080", MetricsListen: "127.0.0.1:8081", PollInterval: 5 * time.Second}, cfg.Sidecar)
	require.Equal(t, 30*24*time.Hour, cfg.Conversions.AttributionWindow)
	require.Equal(t, &Upgrade{Plan: "pro", Price: "price_pro_monthly", Pos: api.Upgrade.Pos}, api.Upgrade)
	require.Equal(t, []string{"control", "short"}, []string{api.Variants[0].Name, api.Variants[1].Name})
	require.Equal(t, UpgradeLinks{PublicURL: "https://billing.acme.test", Expires: 30 * 24 * time.Hour,
		SuccessURL: "https://acme.test/welcome", CancelURL: "https://acme.test/pricing",
		PortalReturnURL: "https://acme.test/welcome", Pos: cfg.UpgradeLinks.Pos}, cfg.UpgradeLinks)
}

func TestParseMinimalGetsDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, "plans:\n  free: {default: true}\n")
	want := Defaults()
	want.File = "t.yaml"
	want.Plans = []Plan{{Name: "free", Default: true, Pos: Pos{2, 3}}}
	want.Warnings = nil
	require.Equal(t, want, cfg)
}

func TestParseSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "tollgate.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
plans:
  free: { default: true }
email:
  provider: smtp
  from: billing@acme.test
  templates: ./emails
  rate_per_second: 0.5
  max_attempts: 3
stripe:
  past_due_is_grace: true
  pause_collection_keeps_plan: true
  reconcile_interval: 15m
  rate_per_second: 100
  trial_prompt: { email: trial_ending }
sidecar: { listen: "127.0.0.1:9000", metrics_listen: "127.0.0.1:9001", poll_interval: 250ms }
conversions: { attribution_window: 7d }
`), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, Email{Provider: "smtp", From: "billing@acme.test", Templates: filepath.Join(dir, "emails"), RatePerSecond: 0.5, MaxAttempts: 3}, cfg.Email)
	require.Equal(t, Stripe{PastDueIsGrace: true, PauseCollectionKeepsPlan: true, ReconcileInterval: 15 * time.Minute,
		RatePerSecond: 100, TrialPrompt: "trial_ending", TrialPromptPos: Pos{15, 26}}, cfg.Stripe)
	require.Equal(t, Sidecar{Listen: "127.0.0.1:9000", MetricsListen: "127.0.0.1:9001", PollInterval: 250 * time.Millisecond}, cfg.Sidecar)
	require.Equal(t, 7*24*time.Hour, cfg.Conversions.AttributionWindow)
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseLimitsAndPeriods(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
plans: { free: { default: true }, pro: {}, team: {} }
features:
  a: { period: month, limits: { free: 0, pro: 9223372036854775807, team: unlimited } }
  b: { period: rolling 7d, limits: { free: true, pro: false, team: on } }
  c: { period: 12h, enforcement: soft, notify_at: [100, 50, 1], limits: { free: 1, pro: 2, team: 3 } }
  d: { limits: { free: unlimited, pro: off, team: 0 } }
  e: { period: billing, limits: { free: 5, pro: 5, team: 5 }, notify_at: [] }
  f: { period: 999999d, limits: { free: 1, pro: 1, team: 1 } }
  g: { period: 999999h, limits: { free: 1, pro: 1, team: 1 } }
  h: { period: rolling 9999d, limits: { free: 1, pro: 1, team: 1 } }
`)
	a, _ := cfg.Feature("a")
	require.Equal(t, []*int64{ptr(0), ptr(9223372036854775807), nil}, quotas(a))
	b, _ := cfg.Feature("b")
	require.Equal(t, "rolling 7d", b.Period)
	require.Equal(t, []*int64{nil, ptr(0), nil}, quotas(b))
	c, _ := cfg.Feature("c")
	require.Equal(t, "soft", c.Enforcement)
	require.Equal(t, []int{1, 50, 100}, c.NotifyAt)
	d, _ := cfg.Feature("d")
	require.Equal(t, "lifetime", d.Period)
	e, _ := cfg.Feature("e")
	require.Equal(t, []int{}, e.NotifyAt)
	for name, period := range map[string]string{"f": "999999d", "g": "999999h", "h": "rolling 9999d"} {
		f, _ := cfg.Feature(name)
		require.Equal(t, period, f.Period, "the largest period define_feature accepts")
	}
}

func quotas(f Feature) []*int64 {
	out := make([]*int64, len(f.Limits))
	for i, l := range f.Limits {
		out[i] = l.Quota
	}
	return out
}

func TestParseWarnings(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
plans: { free: { default: true }, pro: {} }
features:
  reports:
    period: month
    limits: { pro: 10 }
    upgrade_prompt: { email: upgrade_prompt }
`)
	require.Len(t, cfg.Warnings, 2)
	require.Equal(t, 4, cfg.Warnings[0].Line)
	require.Contains(t, cfg.Warnings[0].Message, "upgrade_url")
	require.Equal(t, 6, cfg.Warnings[1].Line)
	require.Contains(t, cfg.Warnings[1].Message, "plan free")
	require.True(t, strings.HasPrefix(cfg.Warnings[1].Message, "warning: "))
}

func TestParseAliases(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
plans: { free: { default: true }, pro: {} }
features:
  a: &metered { period: month, limits: { free: 10, pro: unlimited } }
  b: *metered
`)
	b, _ := cfg.Feature("b")
	require.Equal(t, "month", b.Period)
	require.Len(t, b.Limits, 2)
}

// TestParseErrors checks each mistake gives one error at the right place. Messages are checked loosely (a
// fragment), positions exactly.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const plans = "plans: { free: { default: true }, pro: {} }\n"
	const blockPlans = "plans:\n  free: { default: true }\n"
	for _, tc := range []struct {
		name, src, at, has string
	}{
		{"empty", "", "1:1", "empty"},
		{"only comments", "# nothing\n", "1:1", "empty"},
		{"not a mapping", "- a\n", "1:1", "must be a mapping"},
		{"invalid yaml", "plans: [\n", "1:1", "invalid YAML"},
		{"two documents", plans + "---\nplans: {}\n", "2:1", "second YAML document"},
		{"no plans", "features: {}\n", "1:1", "plans: is required"},
		{"plans empty", "plans: {}\n", "1:8", "at least one plan"},
		{"plans null", "plans:\n# sk_live_abc\n", "1:7", "at least one plan"},
		{"unknown top key", plans + "plan: {}\n", "2:1", "unknown key plan in the file, expected one of plans, features, topups, email, stripe, sidecar, conversions"},
		{"unknown plan key", "plans: { free: { default: true, price: x } }\n", "1:33", "unknown key price in plan free, expected one of default, stripe_prices, stripe_products, rank"},
		{"duplicate key", "plans:\n  free: { default: true }\n  free: {}\n", "3:3", "duplicate key free in plans (first at line 2)"},
		{"merge key", "plans:\n  free: { <<: {default: true} }\n", "2:11", "merge keys"},
		{"bad plan name", "plans: { Free: { default: true } }\n", "1:10", "plan name \"Free\" must match"},
		{"no default", "plans: { free: {}, pro: {} }\n", "1:1", "no default plan"},
		{"two defaults", "plans:\n  free: { default: true }\n  pro: { default: true }\n", "3:3", "second default plan (the first is free, line 2)"},
		{"default not bool", "plans: { free: { default: yes } }\n", "1:27", "must be true or false"},
		{"rank negative", blockPlans + "  team: { rank: -1 }\n", "3:17", "rank must be a whole number from 0"},
		{"rank float", blockPlans + "  team: { rank: 1.5 }\n", "3:17", "rank must be a whole number"},
		{"prices not list", blockPlans + "  team: { stripe_prices: price_x }\n", "3:26", "must be a list"},
		{"price twice", blockPlans + "  team: { stripe_prices: [a, a] }\n", "3:30", "lists a twice"},
		{"price on two plans", "plans:\n  free: { default: true, stripe_prices: [p1] }\n  pro: { stripe_prices: [p1] }\n", "3:3", "Stripe price p1 is on plans free and pro"},
		{"product on two plans", "plans:\n  free: { default: true, stripe_products: [p1] }\n  pro: { stripe_products: [p1] }\n", "3:3", "Stripe product p1 is on plans free and pro"},
		{"bad price id", blockPlans + "  team: { stripe_prices: [\"a b\"] }\n", "3:27", "not a Stripe ID"},
		{"bad feature name", plans + "features: { api-calls: { limits: { free: 1 }, period: month } }\n", "2:13", "feature name \"api-calls\" must match"},
		{"unknown feature key", plans + "features: { a: { limits: { free: 1, pro: 1 }, period: month, limit: 3 } }\n", "2:62", "unknown key limit in feature a, expected one of period, limits"},
		{"no limits", plans + "features: { a: { period: month } }\n", "2:13", "feature a needs limits:"},
		{"unknown plan in limits", plans + "features: { a: { period: month, limits: { free: 1, pro: 1, gold: 1 } } }\n", "2:60", "unknown plan gold, expected one of free, pro"},
		{"negative limit", plans + "features: { a: { period: month, limits: { free: -1, pro: 1 } } }\n", "2:49", "must be a whole number >= 0, unlimited, on or off"},
		{"float limit", plans + "features: { a: { period: month, limits: { free: 1.0, pro: 1 } } }\n", "2:49", "free must be a whole number"},
		{"quoted limit", plans + "features: { a: { period: month, limits: { free: \"10\", pro: 1 } } }\n", "2:49", "free must be a whole number"},
		{"hex limit", plans + "features: { a: { period: month, limits: { free: 0x10, pro: 1 } } }\n", "2:49", "free must be a whole number"},
		{"huge limit", plans + "features: { a: { period: month, limits: { free: 9223372036854775808, pro: 1 } } }\n", "2:49", "free must be a whole number"},
		{"word limit", plans + "features: { a: { period: month, limits: { free: lots, pro: 1 } } }\n", "2:49", "free must be a whole number"},
		{"no period", plans + "features: { a: { limits: { free: 1, pro: 1 } } }\n", "2:13", "feature a needs period:"},
		{"bad period", plans + "features: { a: { period: 30 days, limits: { free: 1, pro: 1 } } }\n", "2:26", "is not a period"},
		{"zero period", plans + "features: { a: { period: 0d, limits: { free: 1, pro: 1 } } }\n", "2:26", "is not a period"},
		{"rolling hours", plans + "features: { a: { period: rolling 2h, limits: { free: 1, pro: 1 } } }\n", "2:26", "is not a period"},
		// the bounds of tollgate.define_feature: six digits for <N>d and <N>h, four for rolling
		{"days past bound", plans + "features: { a: { period: 1000000d, limits: { free: 1, pro: 1 } } }\n", "2:26", "N is at most 999999"},
		{"huge days", plans + "features: { a: { period: 99999999999d, limits: { free: 1, pro: 1 } } }\n", "2:26", "too long a period"},
		{"hours past int", plans + "features: { a: { period: 2147483648h, limits: { free: 1, pro: 1 } } }\n", "2:26", "too long a period"},
		{"rolling past bound", plans + "features: { a: { period: rolling 10000d, limits: { free: 1, pro: 1 } } }\n", "2:26", "9999 for rolling"},
		{"limits empty", plans + "features: { a: { period: month, limits: {} } }\n", "2:41", "needs at least one plan under limits:"},
		{"limits null", plans + "features:\n  a:\n    period: month\n    limits:\n", "5:12", "needs at least one plan under limits:"},
		{"enforcement", plans + "features: { a: { period: month, enforcement: strict, limits: { free: 1, pro: 1 } } }\n", "2:46", "must be hard or soft"},
		{"threshold 0", plans + "features: { a: { period: month, notify_at: [0], limits: { free: 1, pro: 1 } } }\n", "2:45", "from 1 to 100"},
		{"threshold 101", plans + "features: { a: { period: month, notify_at: [50, 101], limits: { free: 1, pro: 1 } } }\n", "2:49", "from 1 to 100"},
		{"threshold twice", plans + "features: { a: { period: month, notify_at: [80, 80], limits: { free: 1, pro: 1 } } }\n", "2:49", "lists 80 twice"},
		{"message not string", plans + "features: { a: { period: month, message: [x], limits: { free: 1, pro: 1 } } }\n", "2:42", "message must be a string"},
		{"prompt key", plans + "features: { a: { period: month, upgrade_prompt: { mail: x }, limits: { free: 1, pro: 1 } } }\n", "2:51", "unknown key mail in features.a.upgrade_prompt, expected one of email"},
		{"prompt name", plans + "features: { a: { period: month, upgrade_prompt: { email: \"../x\" }, limits: { free: 1, pro: 1 } } }\n", "2:58", "template name"},
		{"route no method", plans + "features: { a: { period: month, routes: [/api], limits: { free: 1, pro: 1 } } }\n", "2:42", "must be METHOD /path"},
		{"route method", plans + "features: { a: { period: month, routes: [FETCH /api], limits: { free: 1, pro: 1 } } }\n", "2:42", "method must be one of GET"},
		{"route lowercase", plans + "features: { a: { period: month, routes: [post /api], limits: { free: 1, pro: 1 } } }\n", "2:42", "(write POST)"},
		{"route path", plans + "features: { a: { period: month, routes: [GET api], limits: { free: 1, pro: 1 } } }\n", "2:42", "must start with /"},
		{"route star middle", plans + "features: { a: { period: month, routes: [GET /a/*/b], limits: { free: 1, pro: 1 } } }\n", "2:42", "* may only end the path"},
		{"route two stars", plans + "features: { a: { period: month, routes: [GET /a/**], limits: { free: 1, pro: 1 } } }\n", "2:42", "* may only end the path"},
		{"route query", plans + "features: { a: { period: month, routes: [\"GET /a?b\"], limits: { free: 1, pro: 1 } } }\n", "2:42", "without ? or #"},
		{"route in two features", plans + "features:\n  a: { period: month, routes: [GET /a], limits: { free: 1, pro: 1 } }\n  b: { period: month, routes: [\"GET  /a\"], limits: { free: 1, pro: 1 } }\n", "4:32", "route GET /a is already in feature a (line 3)"},
		{"route twice in one feature", plans + "features:\n  a: { period: month, routes: [GET /a, GET /a], limits: { free: 1, pro: 1 } }\n", "3:40", "already in feature a"},
		{"provider", plans + "email: { provider: sendgrid }\n", "2:20", "email.provider must be one of resend, smtp, log"},
		{"from required", plans + "email: { provider: resend }\n", "2:20", "email.from is required with provider resend"},
		{"from", plans + "email: { from: not an address }\n", "2:16", "email.from must be an address"},
		{"upgrade url", plans + "email: { upgrade_url: /pricing }\n", "2:23", "absolute http or https URL"},
		{"email rate", plans + "email: { rate_per_second: 0 }\n", "2:27", "greater than 0"},
		{"email rate inf", plans + "email: { rate_per_second: .inf }\n", "2:27", "greater than 0"},
		{"max attempts", plans + "email: { max_attempts: 0 }\n", "2:24", "from 1 to 1000"},
		{"reconcile", plans + "stripe: { reconcile_interval: 1 hour }\n", "2:31", "duration such as"},
		{"reconcile number", plans + "stripe: { reconcile_interval: 60 }\n", "2:31", "duration such as"},
		{"negative duration", plans + "sidecar: { poll_interval: -5s }\n", "2:27", "duration such as"},
		{"grace", plans + "stripe: { past_due_is_grace: maybe }\n", "2:30", "must be true or false"},
		{"pause keeps plan", plans + "stripe: { pause_collection_keeps_plan: 1 }\n", "2:40", "must be true or false"},
		{"trial prompt key", plans + "stripe: { trial_prompt: { template: x } }\n", "2:27", "unknown key template in stripe.trial_prompt, expected one of email"},
		{"trial prompt name", plans + "stripe: { trial_prompt: { email: \"../x\" } }\n", "2:34", "template name"},
		{"NUL in a string", plans + "features: { a: { period: month, limits: { free: 1, pro: 1 }, message: \"a\\0b\" } }\n", "2:71", "must not contain a NUL character"},
		{"route too long", plans + "features: { a: { period: month, limits: { free: 1, pro: 1 }, routes: [\"GET /" + strings.Repeat("a", 1000) + "\"] } }\n", "2:71", "longer than 1000 bytes"},
		{"attribution under 1s", plans + "conversions: { attribution_window: 999ms }\n", "2:36", "must be at least 1s"},
		{"metrics listen", plans + "sidecar: { metrics_listen: localhost }\n", "2:28", "sidecar.metrics_listen must be host:port"},
		{"listen", plans + "sidecar: { listen: 8080 }\n", "2:20", "sidecar.listen must be a string"},
		{"listen port", plans + "sidecar: { listen: \":http\" }\n", "2:20", "host:port"},
		{"attribution", plans + "conversions: { attribution_window: 30 }\n", "2:36", "duration such as"},
		{"section not mapping", plans + "stripe: [1]\n", "2:9", "stripe must be a mapping with keys past_due_is_grace"},
		{"stripe secret", plans + "stripe: { key: sk_live_abc123 }\n", "2:16", "Stripe secret key: secrets never go in this file; set STRIPE_SECRET_KEY"},
		{"stripe test secret in comment", plans + "# sk_test_51Habc\n", "2:3", "STRIPE_SECRET_KEY"},
		{"restricted key", plans + "x: rk_live_abc\n", "2:4", "STRIPE_SECRET_KEY"},
		{"webhook secret", plans + "stripe:\n  webhook: \"whsec_abc\"\n", "3:13", "STRIPE_WEBHOOK_SECRET"},
		{"resend key", plans + "email: { key: re_Ab12Cd34_EfGh56IjKl78MnOp }\n", "2:15", "RESEND_API_KEY"},
		{"smtp url", plans + "email: { url: \"smtp://user:hunter2@mail.acme.test:587\" }\n", "2:16", "SMTP_URL"},
		{"database url", plans + "# postgres://app:pw@db/app\n", "2:3", "DATABASE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			errs := parseErrors(t, tc.src)
			found := false
			for _, e := range errs {
				if strings.HasPrefix(e, tc.at+": ") && strings.Contains(e, tc.has) {
					found = true
				}
			}
			require.True(t, found, "want an error at %s containing %q, got:\n%s", tc.at, tc.has, strings.Join(errs, "\n"))
		})
	}
}

// TestParseSecretsNotRepeated: a message never shows the secret it found.
func TestParseSecretsNotRepeated(t *testing.T) {
	t.Parallel()
	errs := parseErrors(t, "plans: { free: { default: true } }\nstripe: { secret_key: sk_live_TOPSECRET1 }\n")
	for _, e := range errs {
		require.NotContains(t, e, "TOPSECRET")
	}
}

func TestParseNotSecrets(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
plans: { free: { default: true } }
features:
  re_engagement_emails_2024:
    limits: { free: on }
    message: "See https://acme.test/pricing or smtp://mail.acme.test (no password there); sk_ alone is fine"
    upgrade_prompt: { email: re_engagement_prompt_v2 }
email: { upgrade_url: "https://user@acme.test/pricing" }
`)
	require.Len(t, cfg.Features, 1)
}

// TestParseCollectsAllErrors: every mistake is reported, in file order.
func TestParseCollectsAllErrors(t *testing.T) {
	t.Parallel()
	errs := parseErrors(t, `plans:
  free: { default: true }
  pro: { rank: ten }
features:
  api_calls:
    period: weekly
    limits: { free: 100, gold: 5 }
    notify_at: [80, 180]
    routes: ["post /x"]
stripe: { secret: sk_live_x1 }
`)
	require.Equal(t, []string{
		"3:16: plans.pro.rank must be a whole number from 0 to 2147483647",
		"6:13: features.api_calls.period weekly is not a period: use month | billing | lifetime | <N>d | <N>h | rolling <N>d",
		"7:26: features.api_calls.limits: unknown plan gold, expected one of free, pro",
		"8:21: features.api_calls.notify_at items must be a whole number from 1 to 100",
		"9:14: route \"post /x\": method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, * (write POST)",
		"10:11: unknown key secret in stripe, expected one of past_due_is_grace, pause_collection_keeps_plan, reconcile_interval, rate_per_second, trial_prompt",
		"10:19: this looks like a Stripe secret key: secrets never go in this file; set STRIPE_SECRET_KEY in the environment instead",
	}, errs)
}

func TestEnvFrom(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://x", "STRIPE_SECRET_KEY": "k", "STRIPE_WEBHOOK_SECRET": "w",
		"STRIPE_API_BASE": "http://localhost:12111", "RESEND_API_KEY": "r", "SMTP_URL": "smtp://h",
		"TOLLGATE_DASHBOARD_TOKEN": "t", "TOLLGATE_DASHBOARD_USER": "u", "TOLLGATE_DASHBOARD_PASSWORD": "p",
		"TOLLGATE_METRICS_TOKEN": "m"}
	require.Equal(t, Env{DatabaseURL: "postgres://x", StripeSecretKey: "k", StripeWebhookSecret: "w",
		StripeAPIBase: "http://localhost:12111", ResendAPIKey: "r", SMTPURL: "smtp://h",
		DashboardToken: "t", DashboardUser: "u", DashboardPassword: "p", MetricsToken: "m"},
		EnvFrom(func(k string) string { return env[k] }))
}

// TestParseAliasBomb: aliases that name a huge structure many times are an error, and errors past maxErrors
// are counted, not listed.
func TestParseAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("plans: { free: { default: true } }\nx: &l [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("GET /a")
		b.WriteString(strings.Repeat("b", i%7))
	}
	b.WriteString("]\nfeatures:\n")
	for i := range 2000 {
		b.WriteString("  f" + strconv.Itoa(i))
		b.WriteString(": { limits: { free: on }, routes: *l }\n")
	}
	errs := parseErrors(t, b.String())
	require.LessOrEqual(t, len(errs), maxErrors+2)
	require.Regexp(t, `^[0-9]+:[0-9]+: and [0-9]+ more errors$`, errs[len(errs)-1])
	too := false
	for _, e := range errs {
		too = too || strings.Contains(e, "too large once its aliases are expanded")
	}
	require.True(t, too, "want the alias error among:\n%s", strings.Join(errs, "\n"))
}

func TestParseTrialPromptWithoutUpgradeURLWarns(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, "plans: { free: { default: true } }\nstripe: { trial_prompt: { email: trial_ending } }\n")
	require.Equal(t, "trial_ending", cfg.Stripe.TrialPrompt)
	require.Len(t, cfg.Warnings, 1)
	require.Equal(t, "t.yaml:2:34: warning: stripe.trial_prompt sends a trial prompt but email.upgrade_url is not set: the email will have no link",
		cfg.Warnings[0].String())
}

// TestRedact: what is logged from an upstream error loses every secret tollgate knows the shape of, and keeps
// the rest.
func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Invalid API Key provided: sk_live_51HabcDEF123":                   "Invalid API Key provided: sk_live_[REDACTED]",
		"key rk_test_abc and sk_test_XYZ9 here":                            "key rk_test_[REDACTED] and sk_test_[REDACTED] here",
		"secret=whsec_Zx8+/abc= end":                                       "secret=whsec_[REDACTED] end",
		`{"error":"bad key re_Ab12Cd34_EfGh56IjKl78MnOp"}`:                 `{"error":"bad key re_[REDACTED]"}`,
		"Authorization: Bearer eyJhbGciOi.J9x-_~+/=":                       "Authorization: Bearer [REDACTED]",
		"dial postgres://app:hunter2@db:5432/app failed":                   "dial postgres://app:[REDACTED]@db:5432/app failed",
		"SMTPS://mailer:p%40ss@smtp.acme.test:465":                         "SMTPS://mailer:[REDACTED]@smtp.acme.test:465",
		"re_engagement_prompt_v2 and sk_ alone and whsec_ alone stay":      "re_engagement_prompt_v2 and sk_ alone and whsec_ alone stay",
		"No such subscription: 'sub_1MowQVLkdIwHu7ixeRlqHVzs'; request id": "No such subscription: 'sub_1MowQVLkdIwHu7ixeRlqHVzs'; request id",
	} {
		require.Equal(t, want, Redact(in), in)
	}
}
