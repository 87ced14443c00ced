package stripesync

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func decode(t *testing.T, js string) Subscription {
	t.Helper()
	var w wireSubscription
	require.NoError(t, json.Unmarshal([]byte(js), &w))
	s, err := w.subscription()
	require.NoError(t, err)
	return s
}

func TestDecodeBothAPIShapes(t *testing.T) {
	t.Parallel()
	// 2023-10-16: periods on the subscription, customer and product as ids
	old := decode(t, `{"id":"sub_1","customer":"cus_1","status":"active","created":1700000000,
		"current_period_start":1700000000,"current_period_end":1702592000,"cancel_at_period_end":true,
		"items":{"data":[{"id":"si_1","price":{"id":"price_a","product":"prod_a"}}],"has_more":false}}`)
	require.Equal(t, Subscription{ID: "sub_1", Customer: "cus_1", Status: "active", PriceIDs: []string{"price_a"},
		ProductIDs: []string{"prod_a"}, PeriodStart: time.Unix(1700000000, 0).UTC(), PeriodEnd: time.Unix(1702592000, 0).UTC(),
		CancelAtPeriodEnd: true, Created: time.Unix(1700000000, 0).UTC()}, old)

	// 2025-03-31 and later: periods on the items only; customer and product expanded
	newer := decode(t, `{"id":"sub_2","customer":{"id":"cus_2","object":"customer","metadata":{"tollgate_customer":"u_2"}},
		"status":"trialing","created":1743400000,
		"items":{"data":[
			{"id":"si_2","price":{"id":"price_b","product":{"id":"prod_b","object":"product"}},
			 "current_period_start":1743400000,"current_period_end":1746000000},
			{"id":"si_3","price":{"id":"price_c","product":"prod_b"},
			 "current_period_start":1743400000,"current_period_end":1774936000}]}}`)
	require.Equal(t, "cus_2", newer.Customer)
	require.Equal(t, "u_2", newer.TollgateCustomer)
	require.Equal(t, []string{"price_b", "price_c"}, newer.PriceIDs)
	require.Equal(t, []string{"prod_b"}, newer.ProductIDs)
	require.Equal(t, time.Unix(1743400000, 0).UTC(), newer.PeriodStart)
	require.Equal(t, time.Unix(1746000000, 0).UTC(), newer.PeriodEnd, "the first item's period")

	// no period anywhere: zero (stored as NULL), never 1970; a deleted customer has no metadata to trust
	none := decode(t, `{"id":"sub_3","customer":{"id":"cus_3","deleted":true,"metadata":{"tollgate_customer":"x"}},
		"status":"incomplete","current_period_start":null,"items":{"data":[{"id":"si_4","price":{"id":"price_d","product":null}}]}}`)
	require.True(t, none.PeriodStart.IsZero())
	require.True(t, none.PeriodEnd.IsZero())
	require.True(t, none.Created.IsZero())
	require.Empty(t, none.TollgateCustomer)
	require.Empty(t, none.ProductIDs)

	var w wireSubscription
	require.NoError(t, json.Unmarshal([]byte(`{"id":"sub_4","status":"active"}`), &w))
	_, err := w.subscription()
	require.Error(t, err, "a subscription without a customer")
}

func TestEventObjectInvoiceSubscription(t *testing.T) {
	t.Parallel()
	for js, want := range map[string]string{
		`{"id":"in_1","subscription":"sub_1"}`:                                                   "sub_1",
		`{"id":"in_1","subscription":{"id":"sub_1","object":"subscription"}}`:                    "sub_1",
		`{"id":"in_1","parent":{"subscription_details":{"subscription":"sub_2"}}}`:               "sub_2",
		`{"id":"in_1","subscription":null,"parent":{"type":"quote_details","quote_details":{}}}`: "",
	} {
		var o eventObject
		require.NoError(t, json.Unmarshal([]byte(js), &o))
		require.Equal(t, want, o.invoiceSubscription(), js)
	}
}
