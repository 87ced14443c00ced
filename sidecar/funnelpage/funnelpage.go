// Package funnelpage serves the conversion funnel as a web page at / of `tollgate serve`: per feature and in
// total, the customers who hit a threshold, hit the limit, were prompted, clicked an upgrade link and converted,
// drawn as server-rendered SVG bars; each prompt experiment's variants with their rates, intervals and p-values,
// the winner when the difference is significant, and a chart of each variant's conversion rate over time; and
// the trials that ended (no scripts, no external assets), over a time range chosen with query parameters:
//
//	/?since=30d               the last 30 days (the default)
//	/?since=2025-01-01&until=2025-01-31
//
// The numbers are those of tollgate.funnel (internal/funnel). The page is protected by a bearer token
// (Authorization: Bearer TOKEN, or ?token=TOKEN) or by basic auth, from the environment; without either it is
// not served at all (`tollgate serve` does not register it, so / answers 404).
package funnelpage

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/funnel"
)

// Auth protects the page: a token, a user and password, or both (either is accepted).
type Auth struct {
	Token    string
	User     string
	Password string
}

// AuthFromEnv takes the page's credentials from TOLLGATE_DASHBOARD_TOKEN, TOLLGATE_DASHBOARD_USER and
// TOLLGATE_DASHBOARD_PASSWORD.
func AuthFromEnv(env config.Env) Auth {
	return Auth{Token: env.DashboardToken, User: env.DashboardUser, Password: env.DashboardPassword}
}

// Enabled reports whether any credential is set: without one the page must not be served.
func (a Auth) Enabled() bool { return a.Token != "" || a.User != "" || a.Password != "" }

// ErrHalfBasicAuth is returned by New for a user without a password or a password without a user.
var ErrHalfBasicAuth = errors.New("funnelpage: TOLLGATE_DASHBOARD_USER and TOLLGATE_DASHBOARD_PASSWORD go together: set both or neither")

// ErrNoAuth is returned by New without any credential: the page is never served unprotected.
var ErrNoAuth = errors.New("funnelpage: no credential: set TOLLGATE_DASHBOARD_TOKEN or TOLLGATE_DASHBOARD_USER and TOLLGATE_DASHBOARD_PASSWORD")

// Options configure a Page.
type Options struct {
	// DB reads tollgate.funnel: a pool whose role is a member of tollgate_sidecar.
	DB   funnel.Querier
	Auth Auth
	// Now is the clock ranges are relative to; default time.Now.
	Now func() time.Time
	// QueryTimeout bounds the database's work per request; default 15 s.
	QueryTimeout time.Duration
	Logger       *slog.Logger
}

// Page is the http.Handler of the funnel page. Register it for "GET /{$}".
type Page struct {
	opts             Options
	tokenSum         [32]byte
	userSum, passSum [32]byte
}

// New returns the page, or ErrNoAuth or ErrHalfBasicAuth.
func New(opts Options) (*Page, error) {
	a := opts.Auth
	if (a.User == "") != (a.Password == "") {
		return nil, ErrHalfBasicAuth
	}
	if !a.Enabled() {
		return nil, ErrNoAuth
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Page{opts: opts, tokenSum: sha256.Sum256([]byte(a.Token)),
		userSum: sha256.Sum256([]byte(a.User)), passSum: sha256.Sum256([]byte(a.Password))}, nil
}

// same compares a secret with a credential in constant time (of their hashes: lengths leak nothing either).
func same(sum [32]byte, given string) bool {
	g := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], g[:]) == 1
}

// authorize reports whether r carries a valid credential, and whether it was the ?token= parameter (which the
// page's own links and form must then carry on).
func (p *Page) authorize(r *http.Request) (ok, viaQuery bool) {
	a := p.opts.Auth
	if a.Token != "" {
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && same(p.tokenSum, strings.TrimSpace(h[7:])) {
			return true, false
		}
		if q := r.URL.Query().Get("token"); q != "" && same(p.tokenSum, q) {
			return true, true
		}
	}
	if a.User != "" {
		if u, pw, has := r.BasicAuth(); has && same(p.userSum, u) && same(p.passSum, pw) {
			return true, false
		}
	}
	return false, false
}

func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ok, viaQuery := p.authorize(r)
	if !ok {
		if p.opts.Auth.User != "" {
			h.Set("WWW-Authenticate", `Basic realm="tollgate", charset="UTF-8"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}

	q := r.URL.Query()
	v := view{Since: q.Get("since"), Until: q.Get("until")}
	if viaQuery {
		v.Token = q.Get("token")
	}
	now := p.opts.Now()
	since, until, err := funnel.ParseRange(v.Since, v.Until, now)
	status := http.StatusOK
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), p.opts.QueryTimeout)
		var rows []funnel.Row
		rows, err = funnel.Query(ctx, p.opts.DB, since, until)
		v.Charts = charts(rows)
		if err == nil {
			var exps []funnel.Experiment
			exps, err = funnel.Experiments(ctx, p.opts.DB, since, until, funnel.Step(since, until))
			v.Experiments = experimentViews(exps)
		}
		if err == nil {
			var t funnel.Trials
			t, err = funnel.QueryTrials(ctx, p.opts.DB, since, until)
			v.Trials = trialsView(t)
		}
		cancel()
	}
	switch {
	case errors.Is(err, funnel.ErrBadRange):
		status, v.Error = http.StatusBadRequest, err.Error()
	case err != nil:
		p.opts.Logger.Error("funnel page: reading the funnel", "err", err)
		status, v.Error = http.StatusInternalServerError, "The funnel could not be read; the sidecar's log says why."
	}
	v.SinceTime, v.UntilTime = since.UTC(), until.UTC()
	v.Presets = presets(v.Token)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if err := pageTemplate.Execute(w, v); err != nil {
		p.opts.Logger.Error("funnel page: rendering", "err", err)
	}
}

// view is what the template shows.
type view struct {
	Since, Until         string // as given
	SinceTime, UntilTime time.Time
	Token                string // carried on by links and the form when it came as ?token=
	Presets              []preset
	Charts               []chart
	Experiments          []experimentView
	Trials               *trials
	Error                string
}

// TotalChart and FeatureCharts split Charts: the total is drawn before the experiments, the features after.
func (v view) TotalChart() []chart    { return filterCharts(v.Charts, true) }
func (v view) FeatureCharts() []chart { return filterCharts(v.Charts, false) }

func filterCharts(cs []chart, total bool) []chart {
	var out []chart
	for _, c := range cs {
		if c.Total == total {
			out = append(out, c)
		}
	}
	return out
}

type preset struct {
	Label string
	URL   string
}

func presets(token string) []preset {
	var out []preset
	for _, p := range []struct{ label, since string }{{"7 days", "7d"}, {"30 days", "30d"}, {"90 days", "90d"}, {"1 year", "365d"}} {
		q := url.Values{"since": {p.since}}
		if token != "" {
			q.Set("token", token)
		}
		out = append(out, preset{Label: p.label, URL: "?" + q.Encode()})
	}
	return out
}

// The chart's geometry, in SVG user units.
const (
	chartWidth = 760
	labelWidth = 210
	barMax     = 440
	barHeight  = 26
	barGap     = 10
	chartTop   = 8
)

// chart is one feature's funnel (or the total's) as bars.
type chart struct {
	Feature string // "total" for the total row
	Total   bool
	Bars    []bar
	Height  int
	Row     funnel.Row
	Rate    string
	Median  string
	P90     string
}

type bar struct {
	Stage, Label string
	Value        int64
	Y, Width     int
	TextX, TextY int
	Fill         string
}

func charts(rows []funnel.Row) []chart {
	var out []chart
	// the total first, then the features in the database's order
	for _, total := range []bool{true, false} {
		for _, r := range rows {
			if r.Total == total {
				out = append(out, newChart(r))
			}
		}
	}
	return out
}

func newChart(r funnel.Row) chart {
	stages := []struct {
		stage, label string
		value        int64
		fill         string
	}{
		{"hit_threshold", "Hit a threshold", r.HitThreshold, "#9db4cf"},
		{"hit_limit", "Hit the limit", r.HitLimit, "#6b8fba"},
		{"prompted", "Prompted", r.Prompted, "#3f6aa1"},
		{"clicked", "Clicked an upgrade link", r.Clicked, "#2b4f7e"},
		{"attributed", "Converted after a prompt", r.Attributed, "#2e8b57"},
		{"organic", "Converted without a prompt", r.Organic, "#9ccfa9"},
	}
	largest := int64(1)
	for _, s := range stages {
		largest = max(largest, s.value)
	}
	c := chart{Feature: r.Name(), Total: r.Total, Row: r, Rate: funnel.FormatRate(r.ConversionRate),
		Median: funnel.FormatSeconds(r.MedianSeconds), P90: funnel.FormatSeconds(r.P90Seconds)}
	for i, s := range stages {
		y := chartTop + i*(barHeight+barGap)
		w := int(math.Round(float64(s.value) / float64(largest) * barMax))
		if s.value > 0 {
			w = max(w, 2)
		}
		c.Bars = append(c.Bars, bar{Stage: s.stage, Label: s.label, Value: s.value, Y: y, Width: w,
			TextX: labelWidth + w + 8, TextY: y + barHeight/2 + 5, Fill: s.fill})
	}
	c.Height = chartTop*2 + len(stages)*(barHeight+barGap) - barGap
	return c
}

// The experiment chart's geometry, in SVG user units.
const (
	expWidth  = 760
	expHeight = 260
	expLeft   = 56 // room for the y axis labels
	expRight  = 120
	expTop    = 14
	expBottom = 34 // room for the x axis labels
)

// variantColors are the lines of the experiment chart: control first.
var variantColors = []string{"#5c7cfa", "#f76707", "#37b24d", "#ae3ec9", "#1098ad", "#f59f00"}

// experimentView is one experiment on the page: its table and its chart.
type experimentView struct {
	Feature  string
	Winner   string
	Variants []variantView
	Width    int
	Height   int
	YTicks   []tick
	XTicks   []tick
	Left     int
	Right    int // the x of the plot's right edge
	Top      int
	Bottom   int // the y of the plot's bottom edge
}

type variantView struct {
	funnel.Variant
	Color                         string
	WeightText                    string // "removed" for a variant no longer defined
	Rate, Interval, Difference, P string
	Winner                        bool
	Points                        string // the polyline's points
	EndX, EndY                    int
	EndLabel                      string
}

type tick struct {
	Pos   int
	Label string
}

func experimentViews(exps []funnel.Experiment) []experimentView {
	var out []experimentView
	for _, e := range exps {
		ev := experimentView{Feature: e.Feature, Winner: e.Winner, Width: expWidth, Height: expHeight,
			Left: expLeft, Right: expWidth - expRight, Top: expTop, Bottom: expHeight - expBottom}
		plotW, plotH := float64(ev.Right-ev.Left), float64(ev.Bottom-ev.Top)
		// the y axis: from 0 to the highest rate of any point, rounded up to a multiple of 4 points (whole ticks)
		top := 0.04
		n := 0
		for _, v := range e.Variants {
			n = max(n, len(v.Timeline))
			for _, p := range v.Timeline {
				top = max(top, p.Rate())
			}
		}
		top = math.Ceil(top*25-1e-9) / 25
		for i := 0; i <= 4; i++ {
			r := top * float64(i) / 4
			ev.YTicks = append(ev.YTicks, tick{Pos: ev.Bottom - int(math.Round(plotH*float64(i)/4)), Label: fmt.Sprintf("%.0f%%", r*100)})
		}
		x := func(i int) int {
			if n <= 1 {
				return ev.Right
			}
			return ev.Left + int(math.Round(plotW*float64(i)/float64(n-1)))
		}
		for i, v := range e.Variants {
			vv := variantView{Variant: v, Color: variantColors[i%len(variantColors)], Rate: funnel.FormatRate(v.Rate),
				Interval: funnel.FormatInterval(v.RateLow, v.RateHigh), Difference: funnel.FormatDifference(v.Difference),
				Winner: v.Variant == e.Winner, WeightText: "removed"}
			if v.Weight != nil {
				vv.WeightText = strconv.Itoa(int(*v.Weight))
			}
			if v.Variant != "control" {
				vv.P = funnel.FormatP(v.PValue)
			}
			var pts []string
			for j, p := range v.Timeline {
				y := ev.Bottom - int(math.Round(plotH*p.Rate()/top))
				pts = append(pts, fmt.Sprintf("%d,%d", x(j), y))
				vv.EndX, vv.EndY = x(j), y
			}
			vv.Points = strings.Join(pts, " ")
			vv.EndLabel = fmt.Sprintf("%s %s", v.Variant, vv.Rate)
			ev.Variants = append(ev.Variants, vv)
		}
		if n > 0 {
			first, last := e.Variants[0].Timeline[0].At, e.Variants[0].Timeline[n-1].At
			ev.XTicks = []tick{{Pos: ev.Left, Label: first.UTC().Format("2 Jan")}, {Pos: ev.Right, Label: last.UTC().Format("2 Jan")}}
		}
		out = append(out, ev)
	}
	return out
}

// trials is the trial funnel on the page; nil when no trial ended in the range.
type trials struct {
	funnel.Trials
	Rate, PromptedRate string
}

func trialsView(t funnel.Trials) *trials {
	if t.Trials == 0 {
		return nil
	}
	return &trials{Trials: t, Rate: funnel.FormatRate(t.ConversionRate), PromptedRate: funnel.FormatRate(t.PromptedRate)}
}

//go:embed page.html.tmpl
var pageHTML string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"date": func(t time.Time) string { return t.Format(time.DateOnly) },
	"time": func(t time.Time) string { return t.Format("2006-01-02 15:04 UTC") },
	"consts": func() map[string]int {
		return map[string]int{"Width": chartWidth, "LabelWidth": labelWidth, "BarHeight": barHeight}
	},
}).Parse(pageHTML))
