package metrics

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExposition(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	c := r.Counter("tollgate_webhooks_total", "Webhooks by type and result.", "type", "result")
	g := r.Gauge("tollgate_listener_up", "1 while the listener is connected.")
	h := r.Histogram("tollgate_email_handoff_seconds", "Event to hand-off.", []float64{0.5, 1}, "provider")
	r.GaugeFunc("tollgate_lag_seconds", "Lag.", func() float64 { return 2.5 })

	c.With("invoice.paid", "applied").Inc()
	c.With("invoice.paid", "applied").Add(2)
	c.With("a\"b", "x").Inc()
	g.With().Set(1)
	h.With("smtp").Observe(0.2)
	h.With("smtp").Observe(0.7)
	h.With("smtp").Observe(3)

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		"# TYPE tollgate_webhooks_total counter\n",
		`tollgate_webhooks_total{type="invoice.paid",result="applied"} 3` + "\n",
		`tollgate_webhooks_total{type="a\"b",result="x"} 1` + "\n",
		"tollgate_listener_up 1\n",
		`tollgate_email_handoff_seconds_bucket{provider="smtp",le="0.5"} 1` + "\n",
		`tollgate_email_handoff_seconds_bucket{provider="smtp",le="1"} 2` + "\n",
		`tollgate_email_handoff_seconds_bucket{provider="smtp",le="+Inf"} 3` + "\n",
		`tollgate_email_handoff_seconds_sum{provider="smtp"} 3.9` + "\n",
		`tollgate_email_handoff_seconds_count{provider="smtp"} 3` + "\n",
		"tollgate_lag_seconds 2.5\n",
	} {
		require.Contains(t, out, want)
	}
	// families come out sorted by name
	require.Less(t, strings.Index(out, "tollgate_email_handoff"), strings.Index(out, "tollgate_webhooks_total"))
}

func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	c := r.Counter("n", "n", "k")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.With("x").Inc()
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 8000, c.With("x").Value())
}

func TestMisuse(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	c := r.Counter("n", "n", "k")
	require.Panics(t, func() { c.With() })
	require.Panics(t, func() { c.With("x").Add(-1) })
	require.Panics(t, func() { r.Gauge("n", "again") })
}
