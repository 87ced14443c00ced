// Package config reads tollgate.yaml: the declarative description of plans, features, limits and routes, plus the
// settings of the sidecar (email, Stripe, HTTP, conversions).
//
// Parse validates the whole file and reports every mistake at once, each as FILE:LINE:COL: message. Secrets never
// come from the file: values that look like API keys or passwords are errors that point to the environment
// variables instead (see Env).
//
// The file's schema for editors is schema/tollgate.schema.json; the reference is docs/config.md.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Defaults of the optional settings. docs/config.md and schema/tollgate.schema.json repeat them.
const (
	DefaultEmailProvider        = "log"
	DefaultEmailRatePerSecond   = 2.0 // Resend's default rate limit is 2 requests per second
	DefaultEmailMaxAttempts     = 8
	DefaultReconcileInterval    = time.Hour
	DefaultStripeRatePerSecond  = 25.0 // Stripe's test-mode limit; live mode allows 100 reads per second
	DefaultListen               = ":8080"
	DefaultMetricsListen        = "127.0.0.1:8081"
	DefaultPollInterval         = 5 * time.Second
	DefaultAttributionWindow    = 30 * 24 * time.Hour
	DefaultEnforcement          = "hard"
	DefaultBooleanFeaturePeriod = "lifetime"
	DefaultLinkExpiry           = 30 * 24 * time.Hour
	// ControlVariant is the prompt variant the others are compared with.
	ControlVariant = "control"
	// MaxVariantWeight bounds a variant's weight (tollgate.define_variant).
	MaxVariantWeight = 1_000_000
)

// DefaultNotifyAt is the percent thresholds a feature emits events at when notify_at is not given.
var DefaultNotifyAt = []int{100}

// Config is a validated tollgate.yaml with every default filled in.
type Config struct {
	// File is the name the file was parsed under ("" for Defaults).
	File string
	// Plans in file order. Exactly one has Default set.
	Plans []Plan
	// Features in file order.
	Features []Feature
	// Topups are the top-up packs sold in Stripe, in file order.
	Topups      []Topup
	Email       Email
	Stripe      Stripe
	Sidecar     Sidecar
	Conversions Conversions
	// UpgradeLinks configures signed upgrade links; PublicURL "" means they are off.
	UpgradeLinks UpgradeLinks
	// Warnings are findings that do not stop the file from being used, such as a plan that a feature's limits
	// do not list (that plan does not get the feature).
	Warnings Errors
}

// Pos is a position in the file, 1-based.
type Pos struct {
	Line, Col int
}

// Plan is an entry under plans:.
type Plan struct {
	Name    string
	Default bool
	// StripePrices and StripeProducts map Stripe subscriptions to this plan, sorted.
	StripePrices   []string
	StripeProducts []string
	// Rank orders plans from lower to higher (an upgrade goes to a higher rank).
	Rank int32
	Pos  Pos
}

// Feature is an entry under features:.
type Feature struct {
	Name string
	// Period is the usage window: month | billing | lifetime | <N>d | <N>h | rolling <N>d.
	Period string
	// Limits has one entry per plan listed under limits:, in file order. Plans not listed do not get the feature.
	Limits []Limit
	// Enforcement is hard (block at the limit) or soft (allow and record the overage).
	Enforcement string
	// NotifyAt holds percent thresholds (1..100) that emit events, ascending.
	NotifyAt []int
	// Message is shown to a blocked customer; "" means none.
	Message string
	// UpgradePrompt is the email template sent when the limit is hit; "" means no email.
	UpgradePrompt string
	// Variants are the prompt's variants (an experiment), in name order; none means no experiment. One is
	// named control.
	Variants []Variant
	// Upgrade is where an upgrade link of this feature leads in Stripe Checkout; nil means the static
	// upgrade_url.
	Upgrade *Upgrade
	// Routes gate HTTP requests (in the Django middleware) on this feature.
	Routes []Route
	Pos    Pos
}

// Variant is an entry under a feature's upgrade_prompt.variants.
type Variant struct {
	Name string
	// Weight is its share of the customers not assigned yet (0 stops new assignments).
	Weight int32
	// Message replaces the feature's message in the 402 and the email; "" means the feature's.
	Message string
	// Email is its email template; "" means the feature's upgrade_prompt.email.
	Email string
	Pos   Pos
}

// Upgrade is a feature's upgrade: the plan and the Stripe price an upgrade link's Checkout Session sells.
type Upgrade struct {
	Plan  string
	Price string
	Pos   Pos
}

// Topup is an entry under topups: a Stripe price whose payment grants units of a feature.
type Topup struct {
	Name string
	// StripePrice is the Stripe Price id (price_...) of the pack.
	StripePrice string
	// Feature is the feature the pack grants units of (not a rolling one).
	Feature string
	// Amount is the units one pack grants (times the quantity bought).
	Amount int64
	// Expires is how long granted units last from the purchase; 0 means they never expire.
	Expires time.Duration
	Pos     Pos
}

// Topup returns the top-up pack with the given name.
func (c *Config) Topup(name string) (Topup, bool) {
	for _, t := range c.Topups {
		if t.Name == name {
			return t, true
		}
	}
	return Topup{}, false
}

// Limit is one plan's quota for a feature.
type Limit struct {
	Plan string
	// Quota is nil for no quota (unlimited, on) and 0 for off.
	Quota *int64
	Pos   Pos
}

// Route is a "METHOD /path" entry under a feature's routes:.
type Route struct {
	// Method is GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or * (any).
	Method string
	// Pattern starts with / and may end with a single * that matches any rest of the path.
	Pattern string
	Pos     Pos
}

// String gives the route as written in the file: "POST /api/features/*".
func (r Route) String() string { return r.Method + " " + r.Pattern }

// Email configures the mailer of the sidecar.
type Email struct {
	// Provider is resend, smtp or log (log writes emails to the sidecar's log instead of sending them).
	Provider string
	// From is the sender, as in "Acme <billing@acme.test>". Required unless Provider is log.
	From string
	// UpgradeURL is the link that upgrade prompts point to.
	UpgradeURL string
	// Templates is a directory whose templates override the built-in ones, resolved against the directory of
	// the file; "" means the built-in templates only.
	Templates     string
	RatePerSecond float64
	// MaxAttempts is how many times one email is tried before it is given up.
	MaxAttempts int
}

// Stripe configures the Stripe sync of the sidecar.
type Stripe struct {
	// PastDueIsGrace keeps past_due subscriptions on their paid plan.
	PastDueIsGrace bool
	// PauseCollectionKeepsPlan keeps subscriptions whose payment collection is paused (pause_collection set)
	// on their paid plan; by default they give no plan.
	PauseCollectionKeepsPlan bool
	ReconcileInterval        time.Duration
	RatePerSecond            float64
	// TrialPrompt is the email template sent when a trial is about to end without a payment method
	// (customer.subscription.trial_will_end); "" means none.
	TrialPrompt string
	// TrialPromptPos is where TrialPrompt was given (zero when it was not).
	TrialPromptPos Pos
}

// Sidecar configures the HTTP server and the outbox polling of the sidecar.
type Sidecar struct {
	// Listen is the address of the HTTP server, host:port: the Stripe webhook, /healthz and the funnel page.
	Listen string
	// MetricsListen is the address of /metrics and /readyz (and /healthz), host:port. When it equals Listen,
	// one server serves every route.
	MetricsListen string
	// PollInterval is how often the outbox is drained when no notification arrives.
	PollInterval time.Duration
}

// UpgradeLinks configures signed upgrade links (GET /upgrade/<token> of the sidecar). The secret comes from the
// environment (TOLLGATE_LINK_SECRET).
type UpgradeLinks struct {
	// PublicURL is where customers reach the sidecar (links are PublicURL/upgrade/<token>); "" = links off.
	PublicURL string
	// Expires is how long a link works after it is minted.
	Expires time.Duration
	// SuccessURL and CancelURL are where Stripe Checkout sends the customer back; PortalReturnURL where the
	// Billing Portal does. Defaults: email.upgrade_url, email.upgrade_url, SuccessURL.
	SuccessURL      string
	CancelURL       string
	PortalReturnURL string
	Pos             Pos
}

// Enabled reports whether the file turns upgrade links on.
func (u UpgradeLinks) Enabled() bool { return u.PublicURL != "" }

// Conversions configures the attribution of free-to-paid conversions to upgrade prompts.
type Conversions struct {
	AttributionWindow time.Duration
}

// Defaults gives the settings used when no file is given: no plans, no features and every default.
func Defaults() *Config {
	return &Config{
		Email: Email{
			Provider:      DefaultEmailProvider,
			RatePerSecond: DefaultEmailRatePerSecond,
			MaxAttempts:   DefaultEmailMaxAttempts,
		},
		Stripe: Stripe{
			ReconcileInterval: DefaultReconcileInterval,
			RatePerSecond:     DefaultStripeRatePerSecond,
		},
		Sidecar: Sidecar{
			Listen:        DefaultListen,
			MetricsListen: DefaultMetricsListen,
			PollInterval:  DefaultPollInterval,
		},
		Conversions:  Conversions{AttributionWindow: DefaultAttributionWindow},
		UpgradeLinks: UpgradeLinks{Expires: DefaultLinkExpiry},
	}
}

// Load reads and parses the file at path. A file that cannot be read gives the *os.PathError; a file with
// mistakes gives Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Plan returns the plan with the given name.
func (c *Config) Plan(name string) (Plan, bool) {
	for _, p := range c.Plans {
		if p.Name == name {
			return p, true
		}
	}
	return Plan{}, false
}

// DefaultPlan returns the plan new customers start on.
func (c *Config) DefaultPlan() Plan {
	for _, p := range c.Plans {
		if p.Default {
			return p
		}
	}
	return Plan{}
}

// Feature returns the feature with the given name.
func (c *Config) Feature(name string) (Feature, bool) {
	for _, f := range c.Features {
		if f.Name == name {
			return f, true
		}
	}
	return Feature{}, false
}

// Diagnostic is one finding in the file.
type Diagnostic struct {
	File      string
	Line, Col int
	Message   string
}

// String gives FILE:LINE:COL: message.
func (d Diagnostic) String() string {
	file := d.File
	if file == "" {
		file = "tollgate.yaml"
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, d.Line, d.Col, d.Message)
}

// Errors is every mistake found in a file, in file order. Match it with errors.As.
type Errors []Diagnostic

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

func (e Errors) sort() {
	sort.SliceStable(e, func(i, j int) bool {
		if e[i].Line != e[j].Line {
			return e[i].Line < e[j].Line
		}
		return e[i].Col < e[j].Col
	})
}

// resolveTemplates resolves a templates directory against the directory of the file.
func resolveTemplates(file, dir string) string {
	if dir == "" || filepath.IsAbs(dir) || file == "" {
		return dir
	}
	return filepath.Join(filepath.Dir(file), dir)
}

// Env is the part of the configuration that comes from the environment: secrets, and where services are.
type Env struct {
	DatabaseURL         string // DATABASE_URL
	StripeSecretKey     string // STRIPE_SECRET_KEY
	StripeWebhookSecret string // STRIPE_WEBHOOK_SECRET
	StripeAPIBase       string // STRIPE_API_BASE: another Stripe endpoint, such as stripe-mock in tests
	ResendAPIKey        string // RESEND_API_KEY
	SMTPURL             string // SMTP_URL: smtp://user:password@host:port or smtps://...
	// The funnel page of tollgate serve is off unless a token or a user and password are set.
	DashboardToken    string // TOLLGATE_DASHBOARD_TOKEN: as a bearer token or ?token=
	DashboardUser     string // TOLLGATE_DASHBOARD_USER: basic auth, with TOLLGATE_DASHBOARD_PASSWORD
	DashboardPassword string // TOLLGATE_DASHBOARD_PASSWORD
	// MetricsToken, when set, is the bearer token /metrics and /readyz require.
	MetricsToken string // TOLLGATE_METRICS_TOKEN
	// LinkSecret signs upgrade links; LinkSecretPrevious is accepted too while the secret is rotated.
	LinkSecret         string // TOLLGATE_LINK_SECRET
	LinkSecretPrevious string // TOLLGATE_LINK_SECRET_PREVIOUS
}

// EnvFrom reads Env through getenv (os.Getenv, or a map's lookup in tests).
func EnvFrom(getenv func(string) string) Env {
	return Env{
		DatabaseURL:         getenv("DATABASE_URL"),
		StripeSecretKey:     getenv("STRIPE_SECRET_KEY"),
		StripeWebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
		StripeAPIBase:       getenv("STRIPE_API_BASE"),
		ResendAPIKey:        getenv("RESEND_API_KEY"),
		SMTPURL:             getenv("SMTP_URL"),
		DashboardToken:      getenv("TOLLGATE_DASHBOARD_TOKEN"),
		DashboardUser:       getenv("TOLLGATE_DASHBOARD_USER"),
		DashboardPassword:   getenv("TOLLGATE_DASHBOARD_PASSWORD"),
		MetricsToken:        getenv("TOLLGATE_METRICS_TOKEN"),
		LinkSecret:          getenv("TOLLGATE_LINK_SECRET"),
		LinkSecretPrevious:  getenv("TOLLGATE_LINK_SECRET_PREVIOUS"),
	}
}
