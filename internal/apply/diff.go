// Package apply writes a tollgate.yaml into the database: it reads the current plans, features, limits and routes,
// computes the changes (Diff, a pure function) and makes them through the owner-only SQL functions
// (tollgate.define_plan, set_limit, ...), in one transaction.
package apply

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

// State is the configuration held in the database (or wanted by a file), in the shape of the tables.
type State struct {
	Plans    []PlanRow
	Features []FeatureRow
	Limits   []LimitRow
	Routes   []RouteRow
	Topups   []TopupRow
	Variants []VariantRow
	Settings []SettingRow
}

// PlanRow is a row of tollgate.plans.
type PlanRow struct {
	Plan           string
	IsDefault      bool
	StripePrices   []string
	StripeProducts []string
	Rank           int32
}

// FeatureRow is a row of tollgate.features.
type FeatureRow struct {
	Feature       string
	Period        string
	Enforcement   string
	NotifyAt      []int32
	Message       *string // nil = NULL
	UpgradePrompt *string // nil = NULL
}

// LimitRow is a row of tollgate.limits.
type LimitRow struct {
	Plan, Feature string
	Quota         *int64 // nil = unlimited
}

// RouteRow is a row of tollgate.routes.
type RouteRow struct {
	Method, Pattern, Feature string
	Amount                   int64
}

// TopupRow is a row of tollgate.topups: a top-up pack sold in Stripe.
type TopupRow struct {
	Topup, StripePrice, Feature string
	Amount                      int64
	// ExpiresSeconds is how long the pack's units last, in whole seconds; nil = never.
	ExpiresSeconds *int64
}

// VariantRow is a row of tollgate.prompt_variants: a variant of a feature's upgrade prompt.
type VariantRow struct {
	Feature, Variant string
	Weight           int32
	Message, Email   *string // nil = NULL (the feature's)
}

// SettingRow is a row of tollgate.settings: behaviour the SQL functions read, such as past_due_is_grace.
type SettingRow struct {
	Key, Value string
}

// Desired is the State a validated config asks for.
func Desired(cfg *config.Config) State {
	s := State{Settings: []SettingRow{
		{Key: "past_due_is_grace", Value: strconv.FormatBool(cfg.Stripe.PastDueIsGrace)},
		{Key: "pause_collection_keeps_plan", Value: strconv.FormatBool(cfg.Stripe.PauseCollectionKeepsPlan)},
		{Key: "trial_prompt", Value: cfg.Stripe.TrialPrompt}, // "" = no trial prompt
		{Key: "attribution_window", Value: intervalText(cfg.Conversions.AttributionWindow)},
	}}
	for _, p := range cfg.Plans {
		s.Plans = append(s.Plans, PlanRow{
			Plan: p.Name, IsDefault: p.Default, Rank: p.Rank,
			StripePrices: nonNil(p.StripePrices), StripeProducts: nonNil(p.StripeProducts),
		})
	}
	for _, f := range cfg.Features {
		row := FeatureRow{Feature: f.Name, Period: f.Period, Enforcement: f.Enforcement, NotifyAt: []int32{}}
		for _, n := range f.NotifyAt {
			row.NotifyAt = append(row.NotifyAt, int32(n))
		}
		if f.Message != "" {
			row.Message = &f.Message
		}
		if f.UpgradePrompt != "" {
			row.UpgradePrompt = &f.UpgradePrompt
		}
		s.Features = append(s.Features, row)
		for _, l := range f.Limits {
			s.Limits = append(s.Limits, LimitRow{Plan: l.Plan, Feature: f.Name, Quota: l.Quota})
		}
		for _, r := range f.Routes {
			s.Routes = append(s.Routes, RouteRow{Method: r.Method, Pattern: r.Pattern, Feature: f.Name, Amount: 1})
		}
		for _, v := range f.Variants {
			row := VariantRow{Feature: f.Name, Variant: v.Name, Weight: v.Weight}
			if v.Message != "" {
				row.Message = &v.Message
			}
			if v.Email != "" {
				row.Email = &v.Email
			}
			s.Variants = append(s.Variants, row)
		}
	}
	for _, t := range cfg.Topups {
		row := TopupRow{Topup: t.Name, StripePrice: t.StripePrice, Feature: t.Feature, Amount: t.Amount}
		if t.Expires > 0 {
			secs := int64(t.Expires / time.Second)
			row.ExpiresSeconds = &secs
		}
		s.Topups = append(s.Topups, row)
	}
	return s
}

// settingText shows a setting's value in a change line; an empty value (no trial prompt) as "".
func settingText(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Op says what a Change does.
type Op byte

const (
	Add    Op = '+'
	Update Op = '~'
	Remove Op = '-'
	Keep   Op = '=' // in the database, not in the file, and not pruned: nothing is written
)

// Change is one line of the plan of an apply, and the SQL call that makes it.
type Change struct {
	Op     Op
	Kind   string // plan, feature, limit, route or setting
	Key    string // "pro", "free/api_calls", "POST /api/*"
	Detail string // what changes, as "rank 0 -> 10"; "" for none

	SQL  string // the statement that makes the change; "" for Keep
	Args []any
}

// String gives the line printed for the change: "~ limit free/api_calls: 100 -> 200".
func (c Change) String() string {
	s := string(c.Op) + " " + c.Kind + " " + c.Key
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

const keptNote = "kept (not in file; use --prune)"

// The SQL of each change. Arguments are named, so they do not depend on the order of the parameters.
const (
	sqlDefinePlan    = "SELECT tollgate.define_plan(plan => $1, is_default => $2, stripe_prices => $3, rank => $4, stripe_products => $5)"
	sqlDefineFeature = "SELECT tollgate.define_feature(feature => $1, period => $2, enforcement => $3, notify_at => $4, message => $5, upgrade_prompt => $6)"
	sqlSetLimit      = "SELECT tollgate.set_limit(plan => $1, feature => $2, quota => $3)"
	sqlDefineRoute   = "SELECT tollgate.define_route(method => $1, pattern => $2, feature => $3, amount => $4)"
	sqlSetSetting    = "SELECT tollgate.set_setting(key => $1, value => $2)"
	sqlRemoveLimit   = "SELECT tollgate.remove_limit(plan => $1, feature => $2)"
	sqlRemoveRoute   = "SELECT tollgate.remove_route(method => $1, pattern => $2)"
	sqlRemoveFeature = "SELECT tollgate.remove_feature(feature => $1)"
	sqlRemovePlan    = "SELECT tollgate.remove_plan(plan => $1)"
	sqlDefineVariant = "SELECT tollgate.define_variant(feature => $1, variant => $2, weight => $3, message => $4, email => $5)"
	sqlRemoveVariant = "SELECT tollgate.remove_variant(feature => $1, variant => $2)"
	sqlDefineTopup   = "SELECT tollgate.define_topup(topup => $1, stripe_price => $2, feature => $3, amount => $4, expires => $5::interval)"
	sqlRemoveTopup   = "SELECT tollgate.remove_topup(topup => $1)"
)

// Diff returns the changes that turn cur into want, in the order they must be made so that every constraint
// holds at each step:
//
//  1. plans, the new default first (define_plan un-defaults the old one; the default plan is never left without
//     a successor);
//  2. features, then their prompt variants;
//  3. limits (they need their plan and feature);
//  4. routes (they need their feature);
//  5. top-up packs (they need their feature); a pack the file no longer names goes first when pruning, or
//     when the file gives its price to another pack;
//  6. settings (set_setting recomputes the plans of customers it concerns);
//  7. with prune: variants, routes, limits, features, then plans that want does not name. Removing a feature or a plan
//     keeps its usage history; their limits and routes are removed first, each listed.
//
// Objects in cur that want does not name are Keep changes unless prune is set. A Keep whose parent (plan or
// feature) is kept too is not listed. A kept default plan that want replaces as default is an Update.
func Diff(cur, want State, prune bool) []Change {
	var out []Change

	curPlans := index(cur.Plans, func(p PlanRow) string { return p.Plan })
	wantPlans := index(want.Plans, func(p PlanRow) string { return p.Plan })
	curFeatures := index(cur.Features, func(f FeatureRow) string { return f.Feature })
	wantFeatures := index(want.Features, func(f FeatureRow) string { return f.Feature })
	limitKey := func(l LimitRow) string { return l.Plan + "/" + l.Feature }
	curLimits := index(cur.Limits, limitKey)
	wantLimits := index(want.Limits, limitKey)
	routeKey := func(r RouteRow) string { return r.Method + " " + r.Pattern }
	curRoutes := index(cur.Routes, routeKey)
	wantRoutes := index(want.Routes, routeKey)

	// 1. plans, the default first
	plans := slices.Clone(want.Plans)
	slices.SortStableFunc(plans, func(a, b PlanRow) int {
		if a.IsDefault != b.IsDefault {
			if a.IsDefault {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Plan, b.Plan)
	})
	newDefault := ""
	for _, p := range plans {
		if p.IsDefault {
			newDefault = p.Plan
		}
		old, ok := curPlans[p.Plan]
		switch {
		case !ok:
			out = append(out, planChange(Add, p, ""))
		default:
			if d := planDetail(old, p); d != "" {
				out = append(out, planChange(Update, p, d))
			}
		}
	}
	// a default plan that the file does not name stops being the default
	for _, p := range sorted(cur.Plans, func(p PlanRow) string { return p.Plan }) {
		if _, ok := wantPlans[p.Plan]; !ok && p.IsDefault && newDefault != "" && !prune {
			next := p
			next.IsDefault = false
			out = append(out, planChange(Update, next, planDetail(p, next)+"; "+keptNote))
		}
	}

	// 2. features
	for _, f := range sorted(want.Features, func(f FeatureRow) string { return f.Feature }) {
		old, ok := curFeatures[f.Feature]
		switch {
		case !ok:
			out = append(out, featureChange(Add, f, "period "+f.Period))
		default:
			if d := featureDetail(old, f); d != "" {
				out = append(out, featureChange(Update, f, d))
			}
		}
	}

	// 2b. prompt variants (they need their feature)
	variantKey := func(v VariantRow) string { return v.Feature + "/" + v.Variant }
	curVariants := index(cur.Variants, variantKey)
	wantVariants := index(want.Variants, variantKey)
	for _, v := range sorted(want.Variants, variantKey) {
		old, ok := curVariants[variantKey(v)]
		switch {
		case !ok:
			out = append(out, variantChange(Add, v, variantText(v)))
		default:
			if d := variantDetail(old, v); d != "" {
				out = append(out, variantChange(Update, v, d))
			}
		}
	}

	// 3. limits
	for _, l := range sorted(want.Limits, limitKey) {
		old, ok := curLimits[limitKey(l)]
		switch {
		case !ok:
			out = append(out, limitChange(Add, l, quota(l.Quota)))
		case !eqPtr(old.Quota, l.Quota):
			out = append(out, limitChange(Update, l, quota(old.Quota)+" -> "+quota(l.Quota)))
		}
	}

	// 4. routes
	for _, r := range sorted(want.Routes, routeKey) {
		old, ok := curRoutes[routeKey(r)]
		switch {
		case !ok:
			out = append(out, routeChange(Add, r, "feature "+r.Feature))
		case old.Feature != r.Feature || old.Amount != r.Amount:
			var d []string
			if old.Feature != r.Feature {
				d = append(d, "feature "+old.Feature+" -> "+r.Feature)
			}
			if old.Amount != r.Amount {
				d = append(d, fmt.Sprintf("amount %d -> %d", old.Amount, r.Amount))
			}
			out = append(out, routeChange(Update, r, strings.Join(d, ", ")))
		}
	}

	// 5. top-up packs. A price belongs to one pack: a pack the file no longer names goes first when the file
	// gives its price to another pack (even without prune), or when pruning.
	topupKey := func(t TopupRow) string { return t.Topup }
	curTopups := index(cur.Topups, topupKey)
	wantTopups := index(want.Topups, topupKey)
	wantPrices := index(want.Topups, func(t TopupRow) string { return t.StripePrice })
	removedTopups := map[string]bool{}
	for _, t := range sorted(cur.Topups, topupKey) {
		if _, ok := wantTopups[t.Topup]; ok {
			continue
		}
		if other, taken := wantPrices[t.StripePrice]; taken {
			out = append(out, topupChange(Remove, t, "its price "+t.StripePrice+" is now top-up "+other.Topup+"'s"))
			removedTopups[t.Topup] = true
		} else if prune {
			out = append(out, topupChange(Remove, t, ""))
			removedTopups[t.Topup] = true
		}
	}
	for _, t := range sorted(want.Topups, topupKey) {
		old, ok := curTopups[t.Topup]
		switch {
		case !ok:
			out = append(out, topupChange(Add, t, topupText(t)))
		default:
			if d := topupDetail(old, t); d != "" {
				out = append(out, topupChange(Update, t, d))
			}
		}
	}

	// 6. settings; the database's other settings are left alone (there is no removing a setting)
	curSettings := index(cur.Settings, func(s SettingRow) string { return s.Key })
	for _, st := range sorted(want.Settings, func(s SettingRow) string { return s.Key }) {
		old, ok := curSettings[st.Key]
		c := Change{Kind: "setting", Key: st.Key, SQL: sqlSetSetting, Args: []any{st.Key, st.Value}}
		switch {
		case !ok:
			c.Op, c.Detail = Add, settingText(st.Value)
		case old.Value != st.Value:
			c.Op, c.Detail = Update, settingText(old.Value)+" -> "+settingText(st.Value)
		default:
			continue
		}
		out = append(out, c)
	}

	// 7. what the file does not name
	keepOrRemove := Keep
	if prune {
		keepOrRemove = Remove
	}
	for _, v := range sorted(cur.Variants, variantKey) {
		if _, ok := wantVariants[variantKey(v)]; ok {
			continue
		}
		if _, parentKept := wantFeatures[v.Feature]; !parentKept && !prune {
			continue // listed with its feature
		}
		out = append(out, variantChange(keepOrRemove, v, keptDetail(prune)))
	}
	for _, t := range sorted(cur.Topups, topupKey) {
		if _, ok := wantTopups[t.Topup]; ok || removedTopups[t.Topup] {
			continue
		}
		if _, parentKept := wantFeatures[t.Feature]; !parentKept {
			continue // listed with its feature
		}
		out = append(out, topupChange(Keep, t, keptNote))
	}
	for _, r := range sorted(cur.Routes, routeKey) {
		if _, ok := wantRoutes[routeKey(r)]; ok {
			continue
		}
		if _, parentKept := wantFeatures[r.Feature]; !parentKept && !prune {
			continue // listed with its feature
		}
		out = append(out, routeChange(keepOrRemove, r, keptDetail(prune)))
	}
	for _, l := range sorted(cur.Limits, limitKey) {
		if _, ok := wantLimits[limitKey(l)]; ok {
			continue
		}
		_, planNamed := wantPlans[l.Plan]
		_, featureNamed := wantFeatures[l.Feature]
		if (!planNamed || !featureNamed) && !prune {
			continue // listed with its plan or feature
		}
		out = append(out, limitChange(keepOrRemove, l, keptDetail(prune)))
	}
	for _, f := range sorted(cur.Features, func(f FeatureRow) string { return f.Feature }) {
		if _, ok := wantFeatures[f.Feature]; !ok {
			out = append(out, featureChange(keepOrRemove, f, keptDetail(prune)))
		}
	}
	for _, p := range sorted(cur.Plans, func(p PlanRow) string { return p.Plan }) {
		if _, ok := wantPlans[p.Plan]; ok {
			continue
		}
		if !prune && p.IsDefault && newDefault != "" {
			continue // listed above, as no longer the default
		}
		out = append(out, planChange(keepOrRemove, p, keptDetail(prune)))
	}
	return out
}

func keptDetail(prune bool) string {
	if prune {
		return ""
	}
	return keptNote
}

// Counts tells how many changes write something, and how many objects are kept.
func Counts(changes []Change) (writes, kept int) {
	for _, c := range changes {
		if c.Op == Keep {
			kept++
		} else {
			writes++
		}
	}
	return writes, kept
}

func planChange(op Op, p PlanRow, detail string) Change {
	c := Change{Op: op, Kind: "plan", Key: p.Plan, Detail: detail}
	switch op {
	case Add, Update:
		c.SQL, c.Args = sqlDefinePlan, []any{p.Plan, p.IsDefault, nonNil(p.StripePrices), p.Rank, nonNil(p.StripeProducts)}
	case Remove:
		c.SQL, c.Args = sqlRemovePlan, []any{p.Plan}
	}
	return c
}

func featureChange(op Op, f FeatureRow, detail string) Change {
	c := Change{Op: op, Kind: "feature", Key: f.Feature, Detail: detail}
	switch op {
	case Add, Update:
		notify := f.NotifyAt
		if notify == nil {
			notify = []int32{}
		}
		c.SQL, c.Args = sqlDefineFeature, []any{f.Feature, f.Period, f.Enforcement, notify, f.Message, f.UpgradePrompt}
	case Remove:
		c.SQL, c.Args = sqlRemoveFeature, []any{f.Feature}
	}
	return c
}

func limitChange(op Op, l LimitRow, detail string) Change {
	c := Change{Op: op, Kind: "limit", Key: l.Plan + "/" + l.Feature, Detail: detail}
	switch op {
	case Add, Update:
		c.SQL, c.Args = sqlSetLimit, []any{l.Plan, l.Feature, l.Quota}
	case Remove:
		c.SQL, c.Args = sqlRemoveLimit, []any{l.Plan, l.Feature}
	}
	return c
}

func routeChange(op Op, r RouteRow, detail string) Change {
	c := Change{Op: op, Kind: "route", Key: r.Method + " " + r.Pattern, Detail: detail}
	switch op {
	case Add, Update:
		c.SQL, c.Args = sqlDefineRoute, []any{r.Method, r.Pattern, r.Feature, r.Amount}
	case Remove:
		c.SQL, c.Args = sqlRemoveRoute, []any{r.Method, r.Pattern}
	}
	return c
}

func variantChange(op Op, v VariantRow, detail string) Change {
	c := Change{Op: op, Kind: "variant", Key: v.Feature + "/" + v.Variant, Detail: detail}
	switch op {
	case Add, Update:
		c.SQL, c.Args = sqlDefineVariant, []any{v.Feature, v.Variant, v.Weight, v.Message, v.Email}
	case Remove:
		c.SQL, c.Args = sqlRemoveVariant, []any{v.Feature, v.Variant}
	}
	return c
}

// variantText describes a variant: "weight 50, message \"...\", email short".
func variantText(v VariantRow) string {
	d := fmt.Sprintf("weight %d", v.Weight)
	if v.Message != nil {
		d += ", message " + text(v.Message)
	}
	if v.Email != nil {
		d += ", email " + *v.Email
	}
	return d
}

func variantDetail(old, v VariantRow) string {
	var d []string
	if old.Weight != v.Weight {
		d = append(d, fmt.Sprintf("weight %d -> %d", old.Weight, v.Weight))
	}
	if !eqPtr(old.Message, v.Message) {
		d = append(d, "message "+text(old.Message)+" -> "+text(v.Message))
	}
	if !eqPtr(old.Email, v.Email) {
		d = append(d, "email "+text(old.Email)+" -> "+text(v.Email))
	}
	return strings.Join(d, ", ")
}

func topupChange(op Op, t TopupRow, detail string) Change {
	c := Change{Op: op, Kind: "topup", Key: t.Topup, Detail: detail}
	switch op {
	case Add, Update:
		var expires *string
		if t.ExpiresSeconds != nil {
			s := intervalText(time.Duration(*t.ExpiresSeconds) * time.Second)
			expires = &s
		}
		c.SQL, c.Args = sqlDefineTopup, []any{t.Topup, t.StripePrice, t.Feature, t.Amount, expires}
	case Remove:
		c.SQL, c.Args = sqlRemoveTopup, []any{t.Topup}
	}
	return c
}

// topupText describes a pack: "price_calls500: 500 api_calls, expires 365d".
func topupText(t TopupRow) string {
	return fmt.Sprintf("%s: %d %s, expires %s", t.StripePrice, t.Amount, t.Feature, expiresText(t.ExpiresSeconds))
}

func expiresText(secs *int64) string {
	if secs == nil {
		return "never"
	}
	d := time.Duration(*secs) * time.Second
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func topupDetail(old, t TopupRow) string {
	var d []string
	if old.StripePrice != t.StripePrice {
		d = append(d, "stripe_price "+old.StripePrice+" -> "+t.StripePrice)
	}
	if old.Feature != t.Feature {
		d = append(d, "feature "+old.Feature+" -> "+t.Feature)
	}
	if old.Amount != t.Amount {
		d = append(d, fmt.Sprintf("amount %d -> %d", old.Amount, t.Amount))
	}
	if !eqPtr(old.ExpiresSeconds, t.ExpiresSeconds) {
		d = append(d, "expires "+expiresText(old.ExpiresSeconds)+" -> "+expiresText(t.ExpiresSeconds))
	}
	return strings.Join(d, ", ")
}

func planDetail(old, p PlanRow) string {
	var d []string
	if old.IsDefault != p.IsDefault {
		d = append(d, fmt.Sprintf("default %t -> %t", old.IsDefault, p.IsDefault))
	}
	if !sameSet(old.StripePrices, p.StripePrices) {
		d = append(d, "stripe_prices "+list(old.StripePrices)+" -> "+list(p.StripePrices))
	}
	if !sameSet(old.StripeProducts, p.StripeProducts) {
		d = append(d, "stripe_products "+list(old.StripeProducts)+" -> "+list(p.StripeProducts))
	}
	if old.Rank != p.Rank {
		d = append(d, fmt.Sprintf("rank %d -> %d", old.Rank, p.Rank))
	}
	return strings.Join(d, ", ")
}

func featureDetail(old, f FeatureRow) string {
	var d []string
	if old.Period != f.Period {
		d = append(d, "period "+old.Period+" -> "+f.Period)
	}
	if old.Enforcement != f.Enforcement {
		d = append(d, "enforcement "+old.Enforcement+" -> "+f.Enforcement)
	}
	if !sameSet(old.NotifyAt, f.NotifyAt) {
		d = append(d, "notify_at "+list(old.NotifyAt)+" -> "+list(f.NotifyAt))
	}
	if !eqPtr(old.Message, f.Message) {
		d = append(d, "message "+text(old.Message)+" -> "+text(f.Message))
	}
	if !eqPtr(old.UpgradePrompt, f.UpgradePrompt) {
		d = append(d, "upgrade_prompt "+text(old.UpgradePrompt)+" -> "+text(f.UpgradePrompt))
	}
	return strings.Join(d, ", ")
}

func quota(q *int64) string {
	if q == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*q, 10)
}

func text(s *string) string {
	if s == nil {
		return "none"
	}
	v := *s
	if r := []rune(v); len(r) > 40 {
		v = string(r[:37]) + "..."
	}
	return strconv.Quote(v)
}

func list[T cmp.Ordered](s []T) string {
	s = slices.Sorted(slices.Values(s))
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameSet[T cmp.Ordered](a, b []T) bool {
	return slices.Equal(slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b))))
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func index[T any](rows []T, key func(T) string) map[string]T {
	m := make(map[string]T, len(rows))
	for _, r := range rows {
		m[key(r)] = r
	}
	return m
}

func sorted[T any](rows []T, key func(T) string) []T {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return out
}

// intervalText writes a duration as a PostgreSQL interval: whole days as days, anything else in seconds.
func intervalText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " days"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " seconds"
}
