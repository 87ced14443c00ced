package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The keys each mapping accepts. The schema test checks schema/tollgate.schema.json against these lists.
var (
	topKeys           = []string{"plans", "features", "topups", "email", "stripe", "sidecar", "conversions", "upgrade_links"}
	topupKeys         = []string{"stripe_price", "feature", "amount", "expires"}
	planKeys          = []string{"default", "stripe_prices", "stripe_products", "rank"}
	featureKeys       = []string{"period", "limits", "enforcement", "notify_at", "message", "upgrade_prompt", "upgrade", "routes"}
	upgradePromptKeys = []string{"email", "variants"}
	variantKeys       = []string{"weight", "message", "email"}
	upgradeKeys       = []string{"plan", "price"}
	upgradeLinksKeys  = []string{"public_url", "expires", "success_url", "cancel_url", "portal_return_url"}
	emailKeys         = []string{"provider", "from", "upgrade_url", "templates", "rate_per_second", "max_attempts"}
	stripeKeys        = []string{"past_due_is_grace", "pause_collection_keeps_plan", "reconcile_interval", "rate_per_second", "trial_prompt"}
	trialPromptKeys   = []string{"email"}
	sidecarKeys       = []string{"listen", "metrics_listen", "poll_interval"}
	conversionsKeys   = []string{"attribution_window"}
)

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	// periodRE has the bounds of tollgate.define_feature (sql/define_feature.sql): <N>d and <N>h up to six
	// digits, rolling <N>d up to four. periodShapeRE is the same without the bounds, to say what is wrong.
	periodRE      = regexp.MustCompile(`^(month|billing|lifetime|[1-9][0-9]{0,5}[dh]|rolling [1-9][0-9]{0,3}d)$`)
	periodShapeRE = regexp.MustCompile(`^([1-9][0-9]*[dh]|rolling [1-9][0-9]*d)$`)
	decimalRE     = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	daysRE        = regexp.MustCompile(`^([1-9][0-9]*)d$`)
	stripeIDRE    = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,255}$`)
	// stripePriceRE is what tollgate.define_topup accepts as a pack's price.
	stripePriceRE = regexp.MustCompile(`^price_[A-Za-z0-9_]{1,249}$`)
)

var (
	enforcements = []string{"hard", "soft"}
	providers    = []string{"resend", "smtp", "log"}
	methods      = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"}
)

// internalError starts the message of a panic caught while parsing (FuzzParse fails on it).
const internalError = "internal error while parsing the file (please report it)"

const periodHelp = "month | billing | lifetime | <N>d | <N>h | rolling <N>d"

// maxRoutePath bounds a route's path: routes are a key of tollgate.routes, and an index entry holds at most
// about 2.7 kB.
const maxRoutePath = 1000

// The largest N of a period, as tollgate.define_feature accepts them.
const (
	MaxPeriodN        = 999999
	MaxRollingPeriodN = 9999
)

// Parse parses and validates a tollgate.yaml. file names it in messages (and is the base of a relative
// email.templates). On any mistake it returns a nil Config and Errors holding every mistake found.
func Parse(file string, data []byte) (cfg *Config, err error) {
	p := &parser{file: file}
	// yaml.v3 is not supposed to panic on any input; if it ever does, that is a bad file, not a crash.
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, Errors{{File: file, Line: 1, Col: 1, Message: fmt.Sprintf("%s: %v", internalError, r)}}
		}
	}()
	p.scanSecrets(data)
	root := p.decode(data)
	if root != nil {
		cfg = p.config(root)
	}
	if len(p.errs) > 0 {
		p.errs.sort()
		if p.more > 0 {
			last := p.errs[len(p.errs)-1]
			p.errs = append(p.errs, Diagnostic{File: file, Line: last.Line, Col: last.Col, Message: fmt.Sprintf("and %d more errors", p.more)})
		}
		return nil, p.errs
	}
	p.warns.sort()
	cfg.Warnings = p.warns
	return cfg, nil
}

type parser struct {
	file string
	// publicURLGiven: upgrade_links.public_url was given (valid or not)
	publicURLGiven bool
	errs           Errors
	warns          Errors
	work           int // nodes visited, aliases counted each time they are used
	more           int // errors past maxErrors, counted only
}

// maxErrors is how many errors are reported; the rest are counted.
const maxErrors = 100

// maxWork bounds the nodes visited: aliases can make a small file name a huge structure.
const maxWork = 1 << 18

// spend counts n nodes visited and reports whether the file is still within maxWork.
func (p *parser) spend(at *yaml.Node, n int) bool {
	if p.work > maxWork {
		return false
	}
	p.work += n
	if p.work > maxWork {
		// past maxErrors too: it explains why the rest of the file was not checked
		p.errs = append(p.errs, Diagnostic{File: p.file, Line: at.Line, Col: at.Column, Message: "the file is too large once its aliases are expanded; the rest is not checked"})
		return false
	}
	return true
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	if len(p.errs) >= maxErrors {
		p.more++
		return
	}
	p.add(Diagnostic{File: p.file, Line: n.Line, Col: n.Column, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) add(d Diagnostic) {
	if len(p.errs) >= maxErrors {
		p.more++
		return
	}
	p.errs = append(p.errs, d)
}

func (p *parser) warnf(n *yaml.Node, format string, args ...any) {
	p.warns = append(p.warns, Diagnostic{File: p.file, Line: n.Line, Col: n.Column, Message: "warning: " + fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// decode returns the root mapping, or nil after recording why there is none.
func (p *parser) decode(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(Diagnostic{File: p.file, Line: 1, Col: 1, Message: "the file is empty: it needs at least plans:"})
			return nil
		}
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "a second YAML document: the file holds exactly one")
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
	}
	if len(doc.Content) == 0 {
		p.add(Diagnostic{File: p.file, Line: 1, Col: 1, Message: "the file is empty: it needs at least plans:"})
		return nil
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		if isNull(root) {
			p.errorf(root, "the file is empty: it needs at least plans:")
		} else {
			p.errorf(root, "the file must be a mapping with keys %s", strings.Join(topKeys, ", "))
		}
		return nil
	}
	return root
}

func (p *parser) yamlError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.add(Diagnostic{File: p.file, Line: line, Col: 1, Message: "invalid YAML: " + m[2]})
		return
	}
	p.add(Diagnostic{File: p.file, Line: 1, Col: 1, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")})
}

// deref follows aliases (*name) to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

type field struct {
	key, val *yaml.Node
}

// entries checks that n is a mapping with unique string keys and returns its entries in order. A null n is an
// empty mapping. A non-nil allowed makes every other key an error.
func (p *parser) entries(n *yaml.Node, what string, allowed []string) []field {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if allowed != nil {
			p.errorf(n, "%s must be a mapping with keys %s", what, strings.Join(allowed, ", "))
		} else {
			p.errorf(n, "%s must be a mapping", what)
		}
		return nil
	}
	if !p.spend(n, len(n.Content)) {
		return nil
	}
	var out []field
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			p.errorf(k, "merge keys (<<) are not supported: write the keys out")
			continue
		}
		k = deref(k)
		if k.Kind != yaml.ScalarNode || isNull(k) {
			p.errorf(k, "keys of %s must be plain names", what)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k, "duplicate key %s in %s (first at line %d)", k.Value, what, first.Line)
			continue
		}
		seen[k.Value] = k
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			p.errorf(k, "unknown key %s in %s, expected one of %s", quoteKey(k.Value), what, strings.Join(allowed, ", "))
			continue
		}
		out = append(out, field{key: k, val: v})
	}
	return out
}

// quoteKey shows a key in a message, quoted when it is not a plain name.
func quoteKey(s string) string {
	if nameRE.MatchString(s) {
		return s
	}
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// str reads a string scalar. ok is false for null (not given) and after an error.
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.errorf(n, "%s must be a string", what)
		return "", false
	}
	if strings.ContainsRune(n.Value, 0) {
		p.errorf(n, "%s must not contain a NUL character (\\0): PostgreSQL text cannot hold one", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	if isNull(n) {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.errorf(n, "%s must be true or false", what)
		return false, false
	}
	return strings.EqualFold(n.Value, "true"), true
}

// integer reads a whole number in decimal digits, between lo and hi.
func (p *parser) integer(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	n = deref(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || !decimalRE.MatchString(n.Value) {
		p.errorf(n, "%s must be a whole number from %d to %d", what, lo, hi)
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || v < lo || v > hi {
		p.errorf(n, "%s must be a whole number from %d to %d", what, lo, hi)
		return 0, false
	}
	return v, true
}

// rate reads a positive number (requests per second).
func (p *parser) rate(n *yaml.Node, what string) (float64, bool) {
	n = deref(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err == nil && v > 0 && v <= 1e6 && !math.IsInf(v, 0) {
			return v, true
		}
	}
	p.errorf(n, "%s must be a number greater than 0 (requests per second)", what)
	return 0, false
}

// duration reads a Go duration (90s, 1h30m) or a number of days (30d); it must be positive.
func (p *parser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = deref(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if d, ok := parseDuration(n.Value); ok {
			return d, true
		}
	}
	p.errorf(n, "%s must be a duration such as 90s, 5m, 1h or 30d", what)
	return 0, false
}

// parseDuration accepts Go durations and <N>d, positive and at most about 290 years.
func parseDuration(s string) (time.Duration, bool) {
	if m := daysRE.FindStringSubmatch(s); m != nil {
		days, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || days > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, false
		}
		return time.Duration(days) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// seq checks that n is a sequence (null is empty) and returns its items.
func (p *parser) seq(n *yaml.Node, what string) []*yaml.Node {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list, as in [a, b]", what)
		return nil
	}
	if !p.spend(n, len(n.Content)) {
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out
}

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

func (p *parser) config(root *yaml.Node) *Config {
	cfg := Defaults()
	cfg.File = p.file
	var plansNode, featuresNode, topupsNode *yaml.Node
	for _, f := range p.entries(root, "the file", topKeys) {
		switch f.key.Value {
		case "plans":
			plansNode = f.key
			cfg.Plans = p.plans(f.val)
		case "features":
			featuresNode = f.val
		case "topups":
			topupsNode = f.val
		case "email":
			p.email(f.val, &cfg.Email)
		case "stripe":
			p.stripe(f.val, &cfg.Stripe)
		case "sidecar":
			p.sidecar(f.val, &cfg.Sidecar)
		case "conversions":
			p.conversions(f.val, &cfg.Conversions)
		case "upgrade_links":
			p.upgradeLinks(f.val, &cfg.UpgradeLinks)
		}
	}
	if plansNode == nil {
		p.errorf(root, "plans: is required: list the plans, one of them with default: true")
	} else {
		p.checkPlans(plansNode, cfg.Plans)
	}
	if featuresNode != nil {
		cfg.Features = p.features(featuresNode, cfg.Plans)
	}
	if topupsNode != nil {
		cfg.Topups = p.topups(topupsNode, cfg)
	}
	p.checkUpgradeLinks(cfg)
	cfg.Email.Templates = resolveTemplates(p.file, cfg.Email.Templates)
	if cfg.Email.UpgradeURL == "" && cfg.Stripe.TrialPrompt != "" {
		p.warns = append(p.warns, Diagnostic{File: p.file, Line: cfg.Stripe.TrialPromptPos.Line, Col: cfg.Stripe.TrialPromptPos.Col,
			Message: "warning: stripe.trial_prompt sends a trial prompt but email.upgrade_url is not set: the email will have no link"})
	}
	if cfg.Email.UpgradeURL == "" {
		for _, f := range cfg.Features {
			if f.UpgradePrompt != "" {
				p.warns = append(p.warns, Diagnostic{File: p.file, Line: f.Pos.Line, Col: f.Pos.Col,
					Message: fmt.Sprintf("warning: feature %s sends an upgrade prompt but email.upgrade_url is not set: the email will have no link", f.Name)})
				break
			}
		}
	}
	return cfg
}

func (p *parser) plans(n *yaml.Node) []Plan {
	var plans []Plan
	if v := deref(n); isNull(v) || (v.Kind == yaml.MappingNode && len(v.Content) == 0) {
		p.errorf(v, "plans: needs at least one plan, one of them with default: true")
		return nil
	}
	fields := p.entries(n, "plans", nil)
	for _, f := range fields {
		name := f.key.Value
		if !nameRE.MatchString(name) {
			p.errorf(f.key, "plan name %s must match %s", quoteKey(name), nameRE)
			continue
		}
		plan := Plan{Name: name, Pos: pos(f.key)}
		for _, pf := range p.entries(f.val, "plan "+name, planKeys) {
			what := "plans." + name + "." + pf.key.Value
			switch pf.key.Value {
			case "default":
				plan.Default, _ = p.boolean(pf.val, what)
			case "stripe_prices":
				plan.StripePrices = p.stripeIDs(pf.val, what)
			case "stripe_products":
				plan.StripeProducts = p.stripeIDs(pf.val, what)
			case "rank":
				r, _ := p.integer(pf.val, what, 0, math.MaxInt32)
				plan.Rank = int32(r)
			}
		}
		plans = append(plans, plan)
	}
	return plans
}

func (p *parser) stripeIDs(n *yaml.Node, what string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, item := range p.seq(n, what) {
		s, ok := p.str(item, what+" items")
		if !ok {
			if isNull(item) {
				p.errorf(item, "%s has an empty item", what)
			}
			continue
		}
		if !stripeIDRE.MatchString(s) {
			p.errorf(item, "%s: %s is not a Stripe ID (letters, digits, _ and -)", what, quoteKey(s))
			continue
		}
		if seen[s] {
			p.errorf(item, "%s lists %s twice", what, s)
			continue
		}
		seen[s] = true
		ids = append(ids, s)
	}
	slices.Sort(ids)
	return ids
}

// checkPlans checks what holds across plans: one default, each Stripe price and product on one plan.
func (p *parser) checkPlans(at *yaml.Node, plans []Plan) {
	var def *Plan
	prices := map[string]Plan{}
	products := map[string]Plan{}
	for i := range plans {
		pl := &plans[i]
		if pl.Default {
			if def != nil {
				p.add(Diagnostic{File: p.file, Line: pl.Pos.Line, Col: pl.Pos.Col,
					Message: fmt.Sprintf("plan %s is a second default plan (the first is %s, line %d): exactly one plan has default: true", pl.Name, def.Name, def.Pos.Line)})
			} else {
				def = pl
			}
		}
		for _, id := range pl.StripePrices {
			if other, dup := prices[id]; dup {
				p.add(Diagnostic{File: p.file, Line: pl.Pos.Line, Col: pl.Pos.Col,
					Message: fmt.Sprintf("Stripe price %s is on plans %s and %s: a price belongs to one plan", id, other.Name, pl.Name)})
			}
			prices[id] = *pl
		}
		for _, id := range pl.StripeProducts {
			if other, dup := products[id]; dup {
				p.add(Diagnostic{File: p.file, Line: pl.Pos.Line, Col: pl.Pos.Col,
					Message: fmt.Sprintf("Stripe product %s is on plans %s and %s: a product belongs to one plan", id, other.Name, pl.Name)})
			}
			products[id] = *pl
		}
	}
	if def == nil && len(plans) > 0 {
		p.errorf(at, "no default plan: mark exactly one plan with default: true (new customers start on it)")
	}
}

func (p *parser) features(n *yaml.Node, plans []Plan) []Feature {
	var features []Feature
	routes := map[string]Route{}
	routeOwner := map[string]string{}
	for _, f := range p.entries(n, "features", nil) {
		name := f.key.Value
		if !nameRE.MatchString(name) {
			p.errorf(f.key, "feature name %s must match %s", quoteKey(name), nameRE)
			continue
		}
		feat := Feature{Name: name, Pos: pos(f.key), Enforcement: DefaultEnforcement, NotifyAt: slices.Clone(DefaultNotifyAt)}
		var periodNode, limitsNode, limitsVal *yaml.Node
		for _, ff := range p.entries(f.val, "feature "+name, featureKeys) {
			what := "features." + name + "." + ff.key.Value
			switch ff.key.Value {
			case "period":
				periodNode = ff.key
				if s, ok := p.str(ff.val, what); ok {
					if periodRE.MatchString(s) {
						feat.Period = s
					} else if periodShapeRE.MatchString(s) {
						p.errorf(deref(ff.val), "%s %s is too long a period: N is at most %d for <N>d and <N>h, %d for rolling <N>d",
							what, quoteKey(s), MaxPeriodN, MaxRollingPeriodN)
					} else {
						p.errorf(deref(ff.val), "%s %s is not a period: use %s", what, quoteKey(s), periodHelp)
					}
				} else if isNull(deref(ff.val)) {
					periodNode = nil
				}
			case "limits":
				limitsNode, limitsVal = ff.key, deref(ff.val)
				feat.Limits = p.limits(ff.val, what, plans)
			case "enforcement":
				if s, ok := p.str(ff.val, what); ok {
					if slices.Contains(enforcements, s) {
						feat.Enforcement = s
					} else {
						p.errorf(deref(ff.val), "%s must be hard or soft", what)
					}
				}
			case "notify_at":
				feat.NotifyAt = p.notifyAt(ff.val, what)
			case "message":
				feat.Message, _ = p.str(ff.val, what)
			case "upgrade_prompt":
				for _, uf := range p.entries(ff.val, what, upgradePromptKeys) {
					switch uf.key.Value {
					case "email":
						if s, ok := p.str(uf.val, what+".email"); ok {
							if nameRE.MatchString(s) {
								feat.UpgradePrompt = s
							} else {
								p.errorf(deref(uf.val), "%s.email is a template name and must match %s", what, nameRE)
							}
						}
					case "variants":
						feat.Variants = p.variants(uf.key, uf.val, what+".variants")
					}
				}
			case "upgrade":
				feat.Upgrade = p.upgrade(ff.key, ff.val, what, plans)
			case "routes":
				for _, item := range p.seq(ff.val, what) {
					r, ok := p.route(item, what)
					if !ok {
						continue
					}
					key := r.String()
					if first, dup := routes[key]; dup {
						p.errorf(item, "route %s is already in feature %s (line %d): a route gates one feature", key, routeOwner[key], first.Pos.Line)
						continue
					}
					routes[key], routeOwner[key] = r, name
					feat.Routes = append(feat.Routes, r)
				}
			}
		}
		if limitsNode == nil {
			p.errorf(f.key, "feature %s needs limits:, as in limits: { free: 100, pro: unlimited }", name)
		} else if isNull(limitsVal) || (limitsVal.Kind == yaml.MappingNode && len(limitsVal.Content) == 0) {
			p.errorf(limitsVal, "feature %s needs at least one plan under limits:, as in limits: { free: 100, pro: unlimited }", name)
		} else if len(plans) > 0 {
			for _, pl := range plans {
				if !slices.ContainsFunc(feat.Limits, func(l Limit) bool { return l.Plan == pl.Name }) {
					p.warnf(limitsNode, "plan %s is not listed under limits of feature %s: it does not get the feature (quota 0); write %s: 0 or %s: off to say so", pl.Name, name, pl.Name, pl.Name)
				}
			}
		}
		if feat.Period == "" && periodNode == nil {
			numeric := false
			for _, l := range feat.Limits {
				if l.Quota != nil && *l.Quota > 0 {
					numeric = true
				}
			}
			if numeric {
				p.errorf(f.key, "feature %s needs period: (%s) because it has numeric limits", name, periodHelp)
			} else {
				feat.Period = DefaultBooleanFeaturePeriod
			}
		}
		features = append(features, feat)
	}
	return features
}

func (p *parser) limits(n *yaml.Node, what string, plans []Plan) []Limit {
	var out []Limit
	names := make([]string, len(plans))
	for i, pl := range plans {
		names[i] = pl.Name
	}
	for _, f := range p.entries(n, what, nil) {
		plan := f.key.Value
		if !slices.Contains(names, plan) {
			if len(names) > 0 {
				p.errorf(f.key, "%s: unknown plan %s, expected one of %s", what, quoteKey(plan), strings.Join(names, ", "))
			}
			continue
		}
		lim := Limit{Plan: plan, Pos: pos(f.key)}
		v := deref(f.val)
		ok := false
		if v.Kind == yaml.ScalarNode {
			switch tag := v.ShortTag(); {
			case tag == "!!str" && (v.Value == "unlimited" || v.Value == "on"):
				ok = true
			case tag == "!!str" && v.Value == "off":
				lim.Quota, ok = new(int64), true
			case tag == "!!bool":
				if !strings.EqualFold(v.Value, "true") {
					lim.Quota = new(int64)
				}
				ok = true
			case tag == "!!int" && decimalRE.MatchString(v.Value):
				if q, err := strconv.ParseInt(v.Value, 10, 64); err == nil {
					lim.Quota, ok = &q, true
				}
			}
		}
		if !ok {
			p.errorf(v, "%s.%s must be a whole number >= 0, unlimited, on or off", what, plan)
			continue
		}
		out = append(out, lim)
	}
	return out
}

func (p *parser) notifyAt(n *yaml.Node, what string) []int {
	out := []int{}
	for _, item := range p.seq(n, what) {
		v, ok := p.integer(item, what+" items", 1, 100)
		if !ok {
			continue
		}
		if slices.Contains(out, int(v)) {
			p.errorf(item, "%s lists %d twice", what, v)
			continue
		}
		out = append(out, int(v))
	}
	slices.Sort(out)
	return out
}

func (p *parser) route(n *yaml.Node, what string) (Route, bool) {
	s, ok := p.str(n, what+" items")
	if !ok {
		if isNull(n) {
			p.errorf(n, "%s has an empty item", what)
		}
		return Route{}, false
	}
	parts := strings.Fields(s)
	if len(parts) != 2 {
		p.errorf(n, "route %s must be METHOD /path, as in \"POST /api/features/*\"", quoteKey(s))
		return Route{}, false
	}
	r := Route{Method: parts[0], Pattern: parts[1], Pos: pos(n)}
	if !slices.Contains(methods, r.Method) {
		hint := ""
		if up := strings.ToUpper(r.Method); slices.Contains(methods, up) {
			hint = " (write " + up + ")"
		}
		p.errorf(n, "route %s: method must be one of %s%s", quoteKey(s), strings.Join(methods, ", "), hint)
		return Route{}, false
	}
	path := r.Pattern
	if !strings.HasPrefix(path, "/") {
		p.errorf(n, "route %s: the path must start with /", quoteKey(s))
		return Route{}, false
	}
	if i := strings.IndexByte(path, '*'); i >= 0 && i != len(path)-1 {
		p.errorf(n, "route %s: * may only end the path, once, as in /api/features/*", quoteKey(s))
		return Route{}, false
	}
	if !utf8.ValidString(path) || strings.ContainsAny(path, "?#") {
		p.errorf(n, "route %s: the path must be a plain path without ? or #", quoteKey(s))
		return Route{}, false
	}
	if len(path) > maxRoutePath {
		p.errorf(n, "route %s: the path is longer than %d bytes", quoteKey(s), maxRoutePath)
		return Route{}, false
	}
	return r, true
}

func (p *parser) email(n *yaml.Node, e *Email) {
	var at *yaml.Node
	for _, f := range p.entries(n, "email", emailKeys) {
		what := "email." + f.key.Value
		switch f.key.Value {
		case "provider":
			if s, ok := p.str(f.val, what); ok {
				if slices.Contains(providers, s) {
					e.Provider = s
					at = deref(f.val)
				} else {
					p.errorf(deref(f.val), "%s must be one of %s", what, strings.Join(providers, ", "))
				}
			}
		case "from":
			if s, ok := p.str(f.val, what); ok {
				if _, err := mail.ParseAddress(s); err != nil {
					p.errorf(deref(f.val), "%s must be an address such as \"Acme <billing@acme.test>\"", what)
				} else {
					e.From = s
				}
			}
		case "upgrade_url":
			if s, ok := p.str(f.val, what); ok {
				if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					p.errorf(deref(f.val), "%s must be an absolute http or https URL", what)
				} else {
					e.UpgradeURL = s
				}
			}
		case "templates":
			if s, ok := p.str(f.val, what); ok && s != "" {
				e.Templates = s
			}
		case "rate_per_second":
			if v, ok := p.rate(f.val, what); ok {
				e.RatePerSecond = v
			}
		case "max_attempts":
			if v, ok := p.integer(f.val, what, 1, 1000); ok {
				e.MaxAttempts = int(v)
			}
		}
	}
	if at != nil && e.Provider != "log" && e.From == "" {
		p.errorf(at, "email.from is required with provider %s", e.Provider)
	}
}

func (p *parser) stripe(n *yaml.Node, s *Stripe) {
	for _, f := range p.entries(n, "stripe", stripeKeys) {
		what := "stripe." + f.key.Value
		switch f.key.Value {
		case "past_due_is_grace":
			s.PastDueIsGrace, _ = p.boolean(f.val, what)
		case "pause_collection_keeps_plan":
			s.PauseCollectionKeepsPlan, _ = p.boolean(f.val, what)
		case "trial_prompt":
			for _, tf := range p.entries(f.val, what, trialPromptKeys) {
				if v, ok := p.str(tf.val, what+".email"); ok {
					if nameRE.MatchString(v) {
						s.TrialPrompt, s.TrialPromptPos = v, pos(deref(tf.val))
					} else {
						p.errorf(deref(tf.val), "%s.email is a template name and must match %s", what, nameRE)
					}
				}
			}
		case "reconcile_interval":
			if d, ok := p.duration(f.val, what); ok {
				s.ReconcileInterval = d
			}
		case "rate_per_second":
			if v, ok := p.rate(f.val, what); ok {
				s.RatePerSecond = v
			}
		}
	}
}

func (p *parser) sidecar(n *yaml.Node, s *Sidecar) {
	for _, f := range p.entries(n, "sidecar", sidecarKeys) {
		what := "sidecar." + f.key.Value
		switch f.key.Value {
		case "listen", "metrics_listen":
			if v, ok := p.str(f.val, what); ok {
				if _, port, err := net.SplitHostPort(v); err != nil || !validPort(port) {
					p.errorf(deref(f.val), "%s must be host:port, as in \":8080\" or \"127.0.0.1:8081\"", what)
				} else if f.key.Value == "listen" {
					s.Listen = v
				} else {
					s.MetricsListen = v
				}
			}
		case "poll_interval":
			if d, ok := p.duration(f.val, what); ok {
				s.PollInterval = d
			}
		}
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && decimalRE.MatchString(s)
}

func (p *parser) conversions(n *yaml.Node, c *Conversions) {
	for _, f := range p.entries(n, "conversions", conversionsKeys) {
		if d, ok := p.duration(f.val, "conversions."+f.key.Value); ok {
			if d < time.Second {
				// the database keeps it as an interval (tollgate.set_setting), which has no nanoseconds
				p.errorf(deref(f.val), "conversions.%s must be at least 1s", f.key.Value)
				continue
			}
			c.AttributionWindow = d
		}
	}
}

// topups reads topups:, after plans and features (a pack names a feature, and its price must be no plan's).
func (p *parser) topups(n *yaml.Node, cfg *Config) []Topup {
	var out []Topup
	prices := map[string]Topup{}
	planPrices := map[string]string{}
	for _, pl := range cfg.Plans {
		for _, id := range pl.StripePrices {
			planPrices[id] = pl.Name
		}
	}
	for _, f := range p.entries(n, "topups", nil) {
		name := f.key.Value
		if !nameRE.MatchString(name) {
			p.errorf(f.key, "top-up name %s must match %s", quoteKey(name), nameRE)
			continue
		}
		t := Topup{Name: name, Pos: pos(f.key)}
		var priceNode, featureNode, amountNode *yaml.Node
		ok := true
		for _, tf := range p.entries(f.val, "topup "+name, topupKeys) {
			what := "topups." + name + "." + tf.key.Value
			switch tf.key.Value {
			case "stripe_price":
				priceNode = deref(tf.val)
				if s, good := p.str(tf.val, what); good {
					if stripePriceRE.MatchString(s) {
						t.StripePrice = s
					} else {
						p.errorf(priceNode, "%s: %s is not a Stripe price id (price_ followed by letters, digits and _)", what, quoteKey(s))
						ok = false
					}
				} else {
					ok = false
				}
			case "feature":
				featureNode = deref(tf.val)
				if s, good := p.str(tf.val, what); good {
					feat, known := cfg.Feature(s)
					switch {
					case !known:
						p.errorf(featureNode, "%s: unknown feature %s", what, quoteKey(s))
						ok = false
					case strings.HasPrefix(feat.Period, "rolling "):
						p.errorf(featureNode, "%s: feature %s has a rolling period: top-up units need a fixed or lifetime one", what, s)
						ok = false
					default:
						t.Feature = s
					}
				} else {
					ok = false
				}
			case "amount":
				amountNode = deref(tf.val)
				if v, good := p.integer(tf.val, what, 1, math.MaxInt64); good {
					t.Amount = v
				} else {
					ok = false
				}
			case "expires":
				if d, good := p.duration(tf.val, what); good {
					if d < time.Second {
						p.errorf(deref(tf.val), "%s must be at least 1s", what)
						ok = false
					} else {
						t.Expires = d
					}
				}
			}
		}
		for _, req := range []struct {
			node *yaml.Node
			key  string
		}{{priceNode, "stripe_price"}, {featureNode, "feature"}, {amountNode, "amount"}} {
			if req.node == nil || isNull(req.node) {
				p.errorf(f.key, "topup %s needs %s:, as in { stripe_price: price_calls500, feature: api_calls, amount: 500, expires: 365d }", name, req.key)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if other, dup := prices[t.StripePrice]; dup {
			p.errorf(priceNode, "Stripe price %s is on top-ups %s and %s: a price is one pack", t.StripePrice, other.Name, name)
			continue
		}
		if plan, dup := planPrices[t.StripePrice]; dup {
			p.errorf(priceNode, "Stripe price %s is plan %s's: a top-up pack needs a price of its own", t.StripePrice, plan)
			continue
		}
		prices[t.StripePrice] = t
		out = append(out, t)
	}
	return out
}

// variants reads a feature's upgrade_prompt.variants: at least one with a weight above 0, one named control.
func (p *parser) variants(key, n *yaml.Node, what string) []Variant {
	var out []Variant
	fields := p.entries(n, what, nil)
	positive, control := false, false
	for _, f := range fields {
		name := f.key.Value
		if !nameRE.MatchString(name) {
			p.errorf(f.key, "variant name %s must match %s", quoteKey(name), nameRE)
			continue
		}
		v := Variant{Name: name, Pos: pos(f.key)}
		weightNode := (*yaml.Node)(nil)
		for _, vf := range p.entries(f.val, "variant "+name, variantKeys) {
			w := what + "." + name + "." + vf.key.Value
			switch vf.key.Value {
			case "weight":
				weightNode = deref(vf.val)
				if x, ok := p.integer(vf.val, w, 0, MaxVariantWeight); ok {
					v.Weight = int32(x)
				}
			case "message":
				if s, ok := p.str(vf.val, w); ok {
					if utf8.RuneCountInString(s) > 10000 {
						p.errorf(deref(vf.val), "%s must be at most 10000 characters", w)
					} else {
						v.Message = s
					}
				}
			case "email":
				if s, ok := p.str(vf.val, w); ok {
					if nameRE.MatchString(s) {
						v.Email = s
					} else {
						p.errorf(deref(vf.val), "%s is a template name and must match %s", w, nameRE)
					}
				}
			}
		}
		if weightNode == nil || isNull(weightNode) {
			p.errorf(f.key, "variant %s needs weight:, as in %s: { weight: 50 }", name, name)
			continue
		}
		positive = positive || v.Weight > 0
		control = control || name == ControlVariant
		out = append(out, v)
	}
	if len(fields) == 0 {
		p.errorf(key, "%s needs at least two variants, one of them control, as in { control: { weight: 50 }, short: { weight: 50, message: \"...\" } }", what)
		return nil
	}
	if len(out) > 0 && !control {
		p.errorf(key, "%s needs a variant named control: the others are compared with it", what)
	}
	if len(out) > 0 && !positive {
		p.errorf(key, "%s: at least one variant needs a weight above 0", what)
	}
	slices.SortFunc(out, func(a, b Variant) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// upgrade reads a feature's upgrade: { plan, price }: a plan other than the default one, and a Stripe price
// that gives it.
func (p *parser) upgrade(key, n *yaml.Node, what string, plans []Plan) *Upgrade {
	u := &Upgrade{Pos: pos(key)}
	var priceNode, planNode *yaml.Node
	for _, f := range p.entries(n, what, upgradeKeys) {
		switch f.key.Value {
		case "plan":
			planNode = deref(f.val)
			if s, ok := p.str(f.val, what+".plan"); ok {
				u.Plan = s
			}
		case "price":
			priceNode = deref(f.val)
			if s, ok := p.str(f.val, what+".price"); ok {
				if stripePriceRE.MatchString(s) {
					u.Price = s
				} else {
					p.errorf(priceNode, "%s.price: %s is not a Stripe price id (price_ followed by letters, digits and _)", what, quoteKey(s))
					return nil
				}
			}
		}
	}
	if u.Plan == "" || u.Price == "" {
		p.errorf(key, "%s needs plan: and price:, as in upgrade: { plan: pro, price: price_pro_monthly }", what)
		return nil
	}
	var plan *Plan
	for i := range plans {
		if plans[i].Name == u.Plan {
			plan = &plans[i]
		}
	}
	switch {
	case plan == nil:
		p.errorf(planNode, "%s.plan: unknown plan %s", what, quoteKey(u.Plan))
		return nil
	case plan.Default:
		p.errorf(planNode, "%s.plan: %s is the default plan: an upgrade goes to a paid one", what, u.Plan)
		return nil
	case len(plan.StripeProducts) == 0 && !slices.Contains(plan.StripePrices, u.Price):
		p.errorf(priceNode, "%s.price: %s is not one of plan %s's stripe_prices: a subscription to it would give no plan", what, u.Price, u.Plan)
		return nil
	}
	return u
}

func (p *parser) upgradeLinks(n *yaml.Node, u *UpgradeLinks) {
	if isNull(deref(n)) {
		return // not given
	}
	u.Pos = pos(deref(n))
	for _, f := range p.entries(n, "upgrade_links", upgradeLinksKeys) {
		what := "upgrade_links." + f.key.Value
		switch f.key.Value {
		case "expires":
			if d, ok := p.duration(f.val, what); ok {
				if d < time.Minute || d > 366*24*time.Hour {
					p.errorf(deref(f.val), "%s must be from 1m to 366d", what)
				} else {
					u.Expires = d
				}
			}
		default:
			s, ok := p.str(f.val, what)
			if !ok {
				continue
			}
			p.publicURLGiven = p.publicURLGiven || f.key.Value == "public_url"
			pu, err := url.Parse(s)
			if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || len(s) > 1000 {
				p.errorf(deref(f.val), "%s must be an absolute http or https URL (at most 1000 characters)", what)
				continue
			}
			switch f.key.Value {
			case "public_url":
				p.publicURLGiven = true
				if pu.RawQuery != "" || pu.Fragment != "" || strings.ContainsAny(s, " \t") {
					p.errorf(deref(f.val), "%s must have no query or fragment: links are PUBLIC_URL/upgrade/<token>", what)
					continue
				}
				u.PublicURL = strings.TrimRight(s, "/")
				u.Pos = pos(deref(f.val))
			case "success_url":
				u.SuccessURL = s
			case "cancel_url":
				u.CancelURL = s
			case "portal_return_url":
				u.PortalReturnURL = s
			}
		}
	}
}

// checkUpgradeLinks holds upgrade_links to what it needs, and fills its defaults.
func (p *parser) checkUpgradeLinks(cfg *Config) {
	u := &cfg.UpgradeLinks
	set := u.Pos != (Pos{})
	if !set {
		return
	}
	if u.PublicURL == "" {
		if p.publicURLGiven {
			return // its own mistake is reported
		}
		p.add(Diagnostic{File: p.file, Line: u.Pos.Line, Col: u.Pos.Col,
			Message: "upgrade_links needs public_url: where customers reach the sidecar, as in https://billing.example.com"})
		return
	}
	if cfg.Email.UpgradeURL == "" {
		p.add(Diagnostic{File: p.file, Line: u.Pos.Line, Col: u.Pos.Col,
			Message: "upgrade_links needs email.upgrade_url: the pricing page a link falls back to (no Stripe, or Checkout failed)"})
	}
	if u.SuccessURL == "" {
		u.SuccessURL = cfg.Email.UpgradeURL
	}
	if u.CancelURL == "" {
		u.CancelURL = cfg.Email.UpgradeURL
	}
	if u.PortalReturnURL == "" {
		u.PortalReturnURL = u.SuccessURL
	}
}
