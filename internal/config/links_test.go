package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const linksBase = `plans:
  free: { default: true }
  pro: { stripe_prices: [price_pro_monthly] }
  team: { stripe_products: [prod_team] }
`

func TestParseUpgradeLinksAndVariants(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, linksBase+`features:
  api_calls:
    period: month
    limits: { free: 100, pro: unlimited, team: unlimited }
    message: "Upgrade to continue."
    upgrade: { plan: pro, price: price_pro_monthly }
    upgrade_prompt:
      email: upgrade_prompt
      variants:
        short: { weight: 30, message: "Out of calls.", email: upgrade_prompt_short }
        control: { weight: 70 }
  exports:
    period: month
    limits: { free: 1, team: 10 }
    upgrade: { plan: team, price: price_any_of_team }
email: { upgrade_url: https://acme.test/pricing }
upgrade_links:
  public_url: https://billing.acme.test/tollgate/
  expires: 7d
`)
	api, _ := cfg.Feature("api_calls")
	require.Equal(t, &Upgrade{Plan: "pro", Price: "price_pro_monthly", Pos: Pos{10, 5}}, api.Upgrade)
	require.Equal(t, []Variant{
		{Name: "control", Weight: 70, Pos: Pos{15, 9}},
		{Name: "short", Weight: 30, Message: "Out of calls.", Email: "upgrade_prompt_short", Pos: Pos{14, 9}},
	}, api.Variants, "in name order")
	exports, _ := cfg.Feature("exports")
	require.Equal(t, "price_any_of_team", exports.Upgrade.Price, "a plan of products may sell any price")
	require.Empty(t, exports.Variants)
	require.Equal(t, UpgradeLinks{PublicURL: "https://billing.acme.test/tollgate", Expires: 7 * 24 * time.Hour,
		SuccessURL: "https://acme.test/pricing", CancelURL: "https://acme.test/pricing",
		PortalReturnURL: "https://acme.test/pricing", Pos: Pos{22, 15}}, cfg.UpgradeLinks)
	require.True(t, cfg.UpgradeLinks.Enabled())

	// without the section: off, with the default expiry
	off := mustParse(t, linksBase)
	require.False(t, off.UpgradeLinks.Enabled())
	require.Equal(t, DefaultLinkExpiry, off.UpgradeLinks.Expires)
	require.False(t, mustParse(t, linksBase+"upgrade_links:\n").UpgradeLinks.Enabled(), "an empty section is not given")
}

func TestParseUpgradeLinkMistakes(t *testing.T) {
	t.Parallel()
	got := parseErrors(t, linksBase+`features:
  a:
    period: month
    limits: { free: 1 }
    upgrade: { plan: free, price: price_x }
    upgrade_prompt: { variants: { short: { weight: 1 } } }
  b:
    period: month
    limits: { free: 1 }
    upgrade: { plan: pro, price: price_pro_yearly }
    upgrade_prompt: { variants: { control: { weight: 0 }, Bad: { weight: 1 }, x: { message: m } } }
  c:
    period: month
    limits: { free: 1 }
    upgrade: { plan: gold, price: prod_x }
    upgrade_prompt: { variants: {} }
  d:
    period: month
    limits: { free: 1 }
    upgrade: { plan: pro }
    upgrade_prompt: { variants: { control: { weight: 1000001, email: Short } } }
upgrade_links: { expires: 10s, success_url: /ok }
`)
	require.Equal(t, []string{
		"9:22: features.a.upgrade.plan: free is the default plan: an upgrade goes to a paid one",
		"10:23: features.a.upgrade_prompt.variants needs a variant named control: the others are compared with it",
		"14:34: features.b.upgrade.price: price_pro_yearly is not one of plan pro's stripe_prices: a subscription to it would give no plan",
		"15:23: features.b.upgrade_prompt.variants: at least one variant needs a weight above 0",
		"15:59: variant name \"Bad\" must match ^[a-z][a-z0-9_]{0,62}$",
		"15:79: variant x needs weight:, as in x: { weight: 50 }",
		"19:35: features.c.upgrade.price: prod_x is not a Stripe price id (price_ followed by letters, digits and _)",
		"20:23: features.c.upgrade_prompt.variants needs at least two variants, one of them control, as in { control: { weight: 50 }, short: { weight: 50, message: \"...\" } }",
		"24:5: features.d.upgrade needs plan: and price:, as in upgrade: { plan: pro, price: price_pro_monthly }",
		"25:23: features.d.upgrade_prompt.variants: at least one variant needs a weight above 0",
		"25:54: features.d.upgrade_prompt.variants.control.weight must be a whole number from 0 to 1000000",
		"25:70: features.d.upgrade_prompt.variants.control.email is a template name and must match ^[a-z][a-z0-9_]{0,62}$",
		"26:16: upgrade_links needs public_url: where customers reach the sidecar, as in https://billing.example.com",
		"26:27: upgrade_links.expires must be from 1m to 366d",
		"26:45: upgrade_links.success_url must be an absolute http or https URL (at most 1000 characters)",
	}, got)

	// links need the static page to fall back to
	got = parseErrors(t, linksBase+"upgrade_links: { public_url: https://b.test }\n")
	require.Equal(t, []string{"5:30: upgrade_links needs email.upgrade_url: the pricing page a link falls back to (no Stripe, or Checkout failed)"}, got)
	got = parseErrors(t, linksBase+"email: { upgrade_url: https://a.test }\nupgrade_links: { public_url: \"https://b.test/?x=1\" }\n")
	require.Equal(t, []string{"6:30: upgrade_links.public_url must have no query or fragment: links are PUBLIC_URL/upgrade/<token>"}, got)
}
