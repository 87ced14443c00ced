package apply

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/config"
)

func mustConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(src))
	require.NoError(t, err)
	return cfg
}

func lines(changes []Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.String()
	}
	return out
}

// the settings a file that says nothing about them asks for
var noGrace = []SettingRow{{Key: "attribution_window", Value: "30 days"}, {Key: "past_due_is_grace", Value: "false"},
	{Key: "pause_collection_keeps_plan", Value: "false"}, {Key: "trial_prompt", Value: ""}}

func i64(v int64) *int64   { return &v }
func str(s string) *string { return &s }

const baseYAML = `
plans:
  free: { default: true }
  pro: { stripe_prices: [price_b, price_a], rank: 10 }
features:
  api_calls:
    period: 30d
    limits: { free: 100, pro: unlimited }
    notify_at: [100, 80]
    message: "Upgrade to continue."
    upgrade_prompt: { email: upgrade_prompt }
    routes: ["POST /api/*"]
  sso:
    limits: { free: off, pro: on }
`

func TestDiffFromEmpty(t *testing.T) {
	t.Parallel()
	changes := Diff(State{}, Desired(mustConfig(t, baseYAML)), false)
	require.Equal(t, []string{
		"+ plan free",
		"+ plan pro",
		"+ feature api_calls: period 30d",
		"+ feature sso: period lifetime",
		"+ limit free/api_calls: 100",
		"+ limit free/sso: 0",
		"+ limit pro/api_calls: unlimited",
		"+ limit pro/sso: unlimited",
		"+ route POST /api/*: feature api_calls",
		"+ setting attribution_window: 30 days",
		"+ setting past_due_is_grace: false",
		"+ setting pause_collection_keeps_plan: false",
		`+ setting trial_prompt: ""`,
	}, lines(changes))
	require.Equal(t, sqlDefinePlan, changes[1].SQL)
	require.Equal(t, []any{"pro", false, []string{"price_a", "price_b"}, int32(10), []string{}}, changes[1].Args)
	require.Equal(t, []any{"api_calls", "30d", "hard", []int32{80, 100}, str("Upgrade to continue."), str("upgrade_prompt")}, changes[2].Args)
	require.Equal(t, []any{"free", "sso", i64(0)}, changes[5].Args)
	require.Equal(t, []any{"pro", "api_calls", (*int64)(nil)}, changes[6].Args)
	require.Equal(t, []any{"POST", "/api/*", "api_calls", int64(1)}, changes[8].Args)
	require.Equal(t, sqlSetSetting, changes[9].SQL)
	require.Equal(t, []any{"past_due_is_grace", "false"}, changes[10].Args)
}

func TestDiffSameIsEmpty(t *testing.T) {
	t.Parallel()
	want := Desired(mustConfig(t, baseYAML))
	// the database returns arrays in its own order; order does not matter
	cur := Desired(mustConfig(t, baseYAML))
	cur.Plans[1].StripePrices = []string{"price_b", "price_a"}
	// a setting the file does not know is left alone
	cur.Settings = append(cur.Settings, SettingRow{Key: "from_the_future", Value: "x"})
	require.Empty(t, Diff(cur, want, false))
	require.Empty(t, Diff(cur, want, true))
}

func TestDiffUpdates(t *testing.T) {
	t.Parallel()
	cur := Desired(mustConfig(t, baseYAML))
	want := Desired(mustConfig(t, `
plans:
  free: { default: true }
  pro: { stripe_prices: [price_a, price_c], stripe_products: [prod_pro], rank: 20 }
features:
  api_calls:
    period: month
    enforcement: soft
    limits: { free: 200, pro: 1000 }
    notify_at: [50]
    routes: ["POST /api/*", "GET /api/*"]
  sso:
    limits: { free: on, pro: on }
stripe: { past_due_is_grace: true, pause_collection_keeps_plan: true, trial_prompt: { email: trial_ending } }
`))
	require.Equal(t, []string{
		"~ plan pro: stripe_prices [price_a price_b] -> [price_a price_c], stripe_products [] -> [prod_pro], rank 10 -> 20",
		`~ feature api_calls: period 30d -> month, enforcement hard -> soft, notify_at [80 100] -> [50], message "Upgrade to continue." -> none, upgrade_prompt "upgrade_prompt" -> none`,
		"~ limit free/api_calls: 100 -> 200",
		"~ limit free/sso: 0 -> unlimited",
		"~ limit pro/api_calls: unlimited -> 1000",
		"+ route GET /api/*: feature api_calls",
		"~ setting past_due_is_grace: false -> true",
		"~ setting pause_collection_keeps_plan: false -> true",
		`~ setting trial_prompt: "" -> trial_ending`,
	}, lines(Diff(cur, want, false)))
}

func TestDiffRouteMovesFeature(t *testing.T) {
	t.Parallel()
	cur := State{
		Plans:    []PlanRow{{Plan: "free", IsDefault: true}},
		Features: []FeatureRow{{Feature: "a", Period: "month", Enforcement: "hard", NotifyAt: []int32{100}}},
		Routes:   []RouteRow{{Method: "GET", Pattern: "/x", Feature: "a", Amount: 3}},
		Settings: noGrace,
	}
	want := Desired(mustConfig(t, `
plans: { free: { default: true } }
features:
  b: { period: month, limits: { free: 1 }, routes: [GET /x] }
`))
	require.Equal(t, []string{
		"+ feature b: period month",
		"+ limit free/b: 1",
		"~ route GET /x: feature a -> b, amount 3 -> 1",
		"= feature a: kept (not in file; use --prune)",
	}, lines(Diff(cur, want, false)))
	require.Equal(t, []string{
		"+ feature b: period month",
		"+ limit free/b: 1",
		"~ route GET /x: feature a -> b, amount 3 -> 1",
		"- feature a",
	}, lines(Diff(cur, want, true)))
}

// TestDiffNotInFile: objects the file does not name are kept (listed once, with their parent) or, with prune,
// removed children first and plans last.
func TestDiffNotInFile(t *testing.T) {
	t.Parallel()
	cur := Desired(mustConfig(t, `
plans:
  free: { default: true }
  pro: {}
  legacy: {}
features:
  api_calls: { period: month, limits: { free: 10, pro: 20, legacy: 30 }, routes: ["GET /a", "GET /b"] }
  old: { period: month, limits: { free: 1, pro: 2 }, routes: ["GET /old"] }
`))
	want := Desired(mustConfig(t, `
plans:
  free: { default: true }
  pro: {}
features:
  api_calls: { period: month, limits: { free: 10 }, routes: ["GET /a"] }
`))
	require.Equal(t, []string{
		"= route GET /b: kept (not in file; use --prune)",
		"= limit pro/api_calls: kept (not in file; use --prune)",
		"= feature old: kept (not in file; use --prune)",
		"= plan legacy: kept (not in file; use --prune)",
	}, lines(Diff(cur, want, false)))
	for _, c := range Diff(cur, want, false) {
		require.Empty(t, c.SQL, "a kept object is not written")
	}

	pruned := Diff(cur, want, true)
	require.Equal(t, []string{
		"- route GET /b",
		"- route GET /old",
		"- limit free/old",
		"- limit legacy/api_calls",
		"- limit pro/api_calls",
		"- limit pro/old",
		"- feature old",
		"- plan legacy",
	}, lines(pruned))
	require.Equal(t, sqlRemoveRoute, pruned[0].SQL)
	require.Equal(t, []any{"GET", "/b"}, pruned[0].Args)
	require.Equal(t, sqlRemoveLimit, pruned[2].SQL)
	require.Equal(t, sqlRemoveFeature, pruned[6].SQL)
	require.Equal(t, []any{"legacy"}, pruned[7].Args)
	writes, kept := Counts(pruned)
	require.Equal(t, 8, writes)
	require.Equal(t, 0, kept)
}

// TestDiffNewDefault: the new default plan is defined first, so the old one can stop being the default (or be
// removed) afterwards.
func TestDiffNewDefault(t *testing.T) {
	t.Parallel()
	cur := State{Plans: []PlanRow{{Plan: "basic", IsDefault: true}, {Plan: "zeta"}}, Settings: noGrace}
	want := Desired(mustConfig(t, "plans:\n  basic: {}\n  zeta: { default: true }\n"))
	require.Equal(t, []string{
		"~ plan zeta: default false -> true",
		"~ plan basic: default true -> false",
	}, lines(Diff(cur, want, false)))

	want = Desired(mustConfig(t, "plans:\n  free: { default: true }\n"))
	changes := Diff(cur, want, false)
	require.Equal(t, []string{
		"+ plan free",
		"~ plan basic: default true -> false; kept (not in file; use --prune)",
		"= plan zeta: kept (not in file; use --prune)",
	}, lines(changes))
	require.Equal(t, []any{"basic", false, []string{}, int32(0), []string{}}, changes[1].Args)

	require.Equal(t, []string{
		"+ plan free",
		"- plan basic",
		"- plan zeta",
	}, lines(Diff(cur, want, true)))
}

func TestDiffLongMessage(t *testing.T) {
	t.Parallel()
	cur := State{Features: []FeatureRow{{Feature: "a", Period: "month", Enforcement: "hard", NotifyAt: []int32{100}, Message: str("short")}}}
	want := State{Features: []FeatureRow{{Feature: "a", Period: "month", Enforcement: "hard", NotifyAt: []int32{100},
		Message: str("a message that is much longer than forty characters, cut")}}}
	require.Equal(t, []string{`~ feature a: message "short" -> "a message that is much longer than fo..."`}, lines(Diff(cur, want, false)))
}

func TestIntervalText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "30 days", intervalText(30*24*time.Hour))
	require.Equal(t, "1 days", intervalText(24*time.Hour))
	require.Equal(t, "5400 seconds", intervalText(90*time.Minute))
}
