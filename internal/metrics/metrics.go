// Package metrics is a small Prometheus registry: counters, gauges and
// histograms with labels, served in the Prometheus text exposition format.
// tollgate needs a dozen series; this keeps client_golang and its dependency
// tree out of the binary.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Registry holds metric families and writes them out sorted by name.
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

type family interface {
	write(w io.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]family{}} }

func (r *Registry) register(name string, f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[name]; dup {
		panic("metrics: " + name + " registered twice")
	}
	r.families[name] = f
}

// Write writes every family in the text exposition format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	fams := make([]family, 0, len(names))
	sort.Strings(names)
	for _, n := range names {
		fams = append(fams, r.families[n])
	}
	r.mu.Unlock()
	for _, f := range fams {
		f.write(w)
	}
}

// Handler serves the registry at /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.Write(w)
	})
}

// vec is the label bookkeeping shared by all metric kinds.
type vec[T any] struct {
	name, help, kind string
	labels           []string
	newChild         func() *T
	mu               sync.Mutex
	children         map[string]*T
	values           map[string][]string
}

func newVec[T any](name, help, kind string, labels []string, newChild func() *T) *vec[T] {
	return &vec[T]{name: name, help: help, kind: kind, labels: labels, newChild: newChild,
		children: map[string]*T{}, values: map[string][]string{}}
}

func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.children[key]
	if !ok {
		c = v.newChild()
		v.children[key] = c
		v.values[key] = append([]string(nil), values...)
	}
	return c
}

// each calls fn for every child in label order.
func (v *vec[T]) each(fn func(labels string, c *T)) {
	v.mu.Lock()
	keys := make([]string, 0, len(v.children))
	for k := range v.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type kc struct {
		labels string
		c      *T
	}
	items := make([]kc, 0, len(keys))
	for _, k := range keys {
		items = append(items, kc{formatLabels(v.labels, v.values[k], "", ""), v.children[k]})
	}
	v.mu.Unlock()
	for _, it := range items {
		fn(it.labels, it.c)
	}
}

func (v *vec[T]) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", v.name, escapeHelp(v.help), v.name, v.kind)
}

// Counter only goes up.
type Counter struct{ f atomicFloat }

// Inc adds 1.
func (c *Counter) Inc() { c.f.add(1) }

// Add adds d, which must not be negative.
func (c *Counter) Add(d float64) {
	if d < 0 {
		panic("metrics: counter decreased")
	}
	c.f.add(d)
}

// Value is the current count.
func (c *Counter) Value() float64 { return c.f.load() }

// CounterVec is a counter family with labels.
type CounterVec struct{ v *vec[Counter] }

// Counter registers a counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	cv := &CounterVec{newVec(name, help, "counter", labels, func() *Counter { return &Counter{} })}
	r.register(name, cv)
	return cv
}

// With returns the counter for the label values, in the order of the labels.
func (cv *CounterVec) With(values ...string) *Counter { return cv.v.with(values) }

func (cv *CounterVec) write(w io.Writer) { writeValues(cv.v, w) }

// Gauge goes up and down.
type Gauge struct{ f atomicFloat }

// Set sets the value.
func (g *Gauge) Set(x float64) { g.f.store(x) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) { g.f.add(d) }

// Inc adds 1; Dec subtracts 1.
func (g *Gauge) Inc() { g.f.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.f.add(-1) }

// Value is the current value.
func (g *Gauge) Value() float64 { return g.f.load() }

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ v *vec[Gauge] }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	gv := &GaugeVec{newVec(name, help, "gauge", labels, func() *Gauge { return &Gauge{} })}
	r.register(name, gv)
	return gv
}

// With returns the gauge for the label values.
func (gv *GaugeVec) With(values ...string) *Gauge { return gv.v.with(values) }

func (gv *GaugeVec) write(w io.Writer) { writeValues(gv.v, w) }

// writeValues writes a family whose samples are one value each (counters, gauges).
func writeValues[T any, P interface {
	*T
	Value() float64
}](v *vec[T], w io.Writer) {
	v.header(w)
	v.each(func(labels string, c *T) {
		fmt.Fprintf(w, "%s%s %s\n", v.name, labels, formatFloat(P(c).Value()))
	})
}

type gaugeFunc struct {
	name, help string
	fn         func() float64
}

// GaugeFunc registers a gauge whose value fn computes at scrape time.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.register(name, &gaugeFunc{name, help, fn})
}

func (g *gaugeFunc) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", g.name, escapeHelp(g.help), g.name, g.name, formatFloat(g.fn()))
}

// DefBuckets suit latencies in seconds.
var DefBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	mu      sync.Mutex
	bounds  []float64
	counts  []uint64
	sum     float64
	samples uint64
}

// Observe records one value.
func (h *Histogram) Observe(x float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, b := range h.bounds {
		if x <= b {
			h.counts[i]++
		}
	}
	h.sum += x
	h.samples++
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.samples
}

// HistogramVec is a histogram family with labels.
type HistogramVec struct {
	v      *vec[Histogram]
	bounds []float64
}

// Histogram registers a histogram family; nil buckets means DefBuckets.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefBuckets
	}
	bounds := append([]float64(nil), buckets...)
	sort.Float64s(bounds)
	hv := &HistogramVec{bounds: bounds}
	hv.v = newVec(name, help, "histogram", labels, func() *Histogram {
		return &Histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
	})
	r.register(name, hv)
	return hv
}

// With returns the histogram for the label values.
func (hv *HistogramVec) With(values ...string) *Histogram { return hv.v.with(values) }

func (hv *HistogramVec) write(w io.Writer) {
	hv.v.header(w)
	hv.v.mu.Lock()
	keys := make([]string, 0, len(hv.v.children))
	for k := range hv.v.children {
		keys = append(keys, k)
	}
	hv.v.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		hv.v.mu.Lock()
		h, values := hv.v.children[k], hv.v.values[k]
		hv.v.mu.Unlock()
		h.mu.Lock()
		for i, b := range h.bounds {
			fmt.Fprintf(w, "%s_bucket%s %d\n", hv.v.name, formatLabels(hv.v.labels, values, "le", formatFloat(b)), h.counts[i])
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", hv.v.name, formatLabels(hv.v.labels, values, "le", "+Inf"), h.samples)
		plain := formatLabels(hv.v.labels, values, "", "")
		fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", hv.v.name, plain, formatFloat(h.sum), hv.v.name, plain, h.samples)
		h.mu.Unlock()
	}
}

func formatLabels(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", n, escapeLabel(values[i]))
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", extraName, extraValue)
	}
	b.WriteByte('}')
	return b.String()
}

// escapeLabel leaves escaping of \ " and newline to %q, which escapes them
// the way the exposition format wants; other control bytes are dropped.
func escapeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' {
			return -1
		}
		return r
	}, s)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
