package config

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const schemaPath = "../../schema/tollgate.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("tollgate.schema.json", doc))
	sch, err := c.Compile("tollgate.schema.json") // also checks the schema against the 2020-12 meta-schema
	require.NoError(t, err)
	return sch
}

// yamlToJSON gives a YAML document as the JSON value an editor's schema check sees.
func yamlToJSON(t *testing.T, src string) any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal([]byte(src), &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return inst
}

func TestSchemaAcceptsExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(examplePath)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(src), "# yaml-language-server: $schema=../schema/tollgate.schema.json\n"))
	require.NoError(t, compileSchema(t).Validate(yamlToJSON(t, string(src))))
}

// TestSchemaAgreesWithParse: files Parse accepts, the schema accepts; mistakes the schema can express, it rejects
// like Parse does.
func TestSchemaAgreesWithParse(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	const plans = "plans: { free: { default: true }, pro: }\n"
	valid := []string{
		plans,
		plans + "features: { a: { period: rolling 7d, limits: { free: 0, pro: unlimited }, notify_at: [50, 100], enforcement: soft } }\n",
		plans + "features: { a: { limits: { free: off, pro: on } } }\n",
		plans + "features: { a: { limits: { free: false, pro: true } } }\n",
		plans + "features: { a: { period: 12h, limits: { free: 9223372036854775807 }, routes: [\"* /\", \"GET /a/*\", \"OPTIONS  /x\"] } }\n",
		plans + "email: { provider: smtp, from: a@b.test, upgrade_url: http://localhost:8000/up, templates: ./e, rate_per_second: 0.5, max_attempts: 1 }\n",
		plans + "stripe: { past_due_is_grace: true, reconcile_interval: 1h30m, rate_per_second: 100 }\n",
		plans + "stripe: { pause_collection_keeps_plan: true, trial_prompt: { email: trial_ending } }\n",
		plans + "sidecar: { listen: \"127.0.0.1:0\", metrics_listen: \":9100\", poll_interval: 250ms }\nconversions: { attribution_window: 7d }\n",
		plans + "features: { a: { period: 999999d, limits: { free: 1 } }, b: { period: rolling 9999d, limits: { free: 1 } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 } } }\ntopups: { p: { stripe_price: price_p, feature: a, amount: 5, expires: 30d }, q: { stripe_price: price_q, feature: a, amount: 1 } }\n",
		"plans: { free: { default: true }, pro: { stripe_prices: [price_pro] } }\nfeatures: { a: { period: month, limits: { free: 1 }, upgrade: { plan: pro, price: price_pro },\n  upgrade_prompt: { email: upgrade_prompt, variants: { control: { weight: 50 }, short: { weight: 0, message: m, email: short } } } } }\nemail: { upgrade_url: https://a.test/pricing }\nupgrade_links: { public_url: https://billing.a.test/x, expires: 7d, success_url: https://a.test/ok, cancel_url: https://a.test/no, portal_return_url: https://a.test/acct }\n",
	}
	for _, src := range valid {
		_, err := Parse("t.yaml", []byte(src))
		require.NoError(t, err, src)
		require.NoError(t, sch.Validate(yamlToJSON(t, src)), src)
	}
	invalid := []string{
		"features: {}\n",
		"plans: {}\n",
		plans + "plan: {}\n",
		"plans: { Free: { default: true } }\n",
		"plans: { free: { default: true, price: x } }\n",
		"plans: { free: { default: true, rank: -1 } }\n",
		"plans: { free: { default: true, stripe_prices: [a, a] } }\n",
		plans + "features: { a: { period: month } }\n",
		plans + "features: { a: { period: weekly, limits: { free: 1 } } }\n",
		plans + "features: { a: { period: rolling 2h, limits: { free: 1 } } }\n",
		plans + "features: { a: { period: 1000000d, limits: { free: 1 } } }\n",
		plans + "features: { a: { period: rolling 10000d, limits: { free: 1 } } }\n",
		plans + "features: { a: { period: month, limits: {} } }\n",
		plans + "stripe: { trial_prompt: { email: Trial } }\n",
		plans + "sidecar: { metrics_listen: 9100 }\n",
		plans + "features: { a: { period: month, limits: { free: -1 } } }\n",
		plans + "features: { a: { period: month, limits: { free: lots } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, enforcement: strict } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, notify_at: [0] } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, notify_at: [80, 80] } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, upgrade_prompt: { mail: x } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, routes: [post /x] } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, routes: [GET /a/*/b] } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, routes: [GET x] } }\n",
		plans + "email: { provider: sendgrid }\n",
		plans + "email: { max_attempts: 0 }\n",
		plans + "stripe: { reconcile_interval: 1 hour }\n",
		plans + "sidecar: { listen: 8080 }\n",
		plans + "conversions: { attribution_window: 30 }\n",
		plans + "features: { a: { period: month, limits: { free: 1 } } }\ntopups: { p: { stripe_price: prod_p, feature: a, amount: 5 } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 } } }\ntopups: { p: { stripe_price: price_p, feature: a, amount: 0 } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 } } }\ntopups: { p: { stripe_price: price_p, amount: 5 } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 } } }\ntopups: { p: { stripe_price: price_p, feature: a, amount: 5, expires: 1 year } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, upgrade_prompt: { variants: { short: { weight: 1 } } } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, upgrade_prompt: { variants: { control: { weight: -1 } } } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, upgrade_prompt: { variants: { control: { message: x } } } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, upgrade: { plan: pro } } }\n",
		plans + "features: { a: { period: month, limits: { free: 1 }, upgrade: { plan: pro, price: prod_x } } }\n",
		plans + "email: { upgrade_url: https://a.test/pricing }\nupgrade_links: { expires: 7d }\n",
		plans + "email: { upgrade_url: https://a.test/pricing }\nupgrade_links: { public_url: billing.a.test }\n",
	}
	for _, src := range invalid {
		_, err := Parse("t.yaml", []byte(src))
		require.Error(t, err, src)
		require.Error(t, sch.Validate(yamlToJSON(t, src)), src)
	}
}

// TestSchemaHasEveryKey: the schema names exactly the keys Parse accepts, at each level.
func TestSchemaHasEveryKey(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(schemaPath)
	require.NoError(t, err)
	var s map[string]any
	require.NoError(t, json.Unmarshal(raw, &s))
	keys := func(path ...string) []string {
		node := any(s)
		for _, p := range path {
			node = node.(map[string]any)[p]
		}
		var out []string
		for k := range node.(map[string]any)["properties"].(map[string]any) {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { return slices.Sorted(slices.Values(s)) }
	require.Equal(t, sorted(topKeys), keys())
	require.Equal(t, sorted(planKeys), keys("$defs", "plan"))
	require.Equal(t, sorted(featureKeys), keys("$defs", "feature"))
	require.Equal(t, sorted(upgradePromptKeys), keys("$defs", "feature", "properties", "upgrade_prompt"))
	require.Equal(t, sorted(trialPromptKeys), keys("properties", "stripe", "properties", "trial_prompt"))
	require.Equal(t, sorted(emailKeys), keys("properties", "email"))
	require.Equal(t, sorted(stripeKeys), keys("properties", "stripe"))
	require.Equal(t, sorted(sidecarKeys), keys("properties", "sidecar"))
	require.Equal(t, sorted(conversionsKeys), keys("properties", "conversions"))
	require.Equal(t, sorted(topupKeys), keys("$defs", "topup"))
	require.Equal(t, sorted(variantKeys), keys("$defs", "variant"))
	require.Equal(t, sorted(upgradeKeys), keys("$defs", "feature", "properties", "upgrade"))
	require.Equal(t, sorted(upgradeLinksKeys), keys("properties", "upgrade_links"))
}
