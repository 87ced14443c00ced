package config

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const topupBase = `plans:
  free: { default: true }
  pro: { stripe_prices: [price_pro] }
features:
  api_calls: { period: month, limits: { free: 100, pro: unlimited } }
  seats: { period: rolling 7d, limits: { free: 1, pro: 10 } }
`

func TestParseTopups(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, topupBase+`topups:
  calls_500: { stripe_price: price_calls500, feature: api_calls, amount: 500, expires: 365d }
  calls_forever:
    stripe_price: price_callsForever_2
    feature: api_calls
    amount: 9223372036854775807
`)
	require.Equal(t, []Topup{
		{Name: "calls_500", StripePrice: "price_calls500", Feature: "api_calls", Amount: 500, Expires: 365 * 24 * time.Hour, Pos: Pos{8, 3}},
		{Name: "calls_forever", StripePrice: "price_callsForever_2", Feature: "api_calls", Amount: math.MaxInt64, Pos: Pos{9, 3}},
	}, cfg.Topups)
	pack, ok := cfg.Topup("calls_500")
	require.True(t, ok)
	require.Equal(t, int64(500), pack.Amount)
	_, ok = cfg.Topup("nope")
	require.False(t, ok)
}

func TestParseTopupMistakes(t *testing.T) {
	t.Parallel()
	got := parseErrors(t, topupBase+`topups:
  Calls: { stripe_price: price_a, feature: api_calls, amount: 1 }
  a: { stripe_price: prod_a, feature: api_calls, amount: 1 }
  b: { stripe_price: price_b, feature: nope, amount: 1 }
  c: { stripe_price: price_c, feature: seats, amount: 1 }
  d: { stripe_price: price_d, feature: api_calls, amount: 0 }
  e: { stripe_price: price_e, feature: api_calls, amount: 1, expires: 500ms }
  f: { stripe_price: price_f, feature: api_calls, amount: 1, expires: soon }
  g: { feature: api_calls, amount: 1 }
  h: { stripe_price: price_h, feature: api_calls, amount: 1, price: 5 }
  i: { stripe_price: price_pro, feature: api_calls, amount: 1 }
  j: { stripe_price: price_j, feature: api_calls, amount: 1 }
  k: { stripe_price: price_j, feature: api_calls, amount: 2 }
`)
	require.Equal(t, []string{
		"8:3: top-up name \"Calls\" must match ^[a-z][a-z0-9_]{0,62}$",
		"9:22: topups.a.stripe_price: prod_a is not a Stripe price id (price_ followed by letters, digits and _)",
		"10:40: topups.b.feature: unknown feature nope",
		"11:40: topups.c.feature: feature seats has a rolling period: top-up units need a fixed or lifetime one",
		"12:59: topups.d.amount must be a whole number from 1 to 9223372036854775807",
		"13:71: topups.e.expires must be at least 1s",
		"14:71: topups.f.expires must be a duration such as 90s, 5m, 1h or 30d",
		"15:3: topup g needs stripe_price:, as in { stripe_price: price_calls500, feature: api_calls, amount: 500, expires: 365d }",
		"16:62: unknown key price in topup h, expected one of stripe_price, feature, amount, expires",
		"17:22: Stripe price price_pro is plan pro's: a top-up pack needs a price of its own",
		"19:22: Stripe price price_j is on top-ups j and k: a price is one pack",
	}, got)
}
