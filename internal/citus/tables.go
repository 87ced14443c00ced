package citus

import "fmt"

// Placement is where a table of schema tollgate lives on a Citus cluster.
type Placement string

const (
	// Distributed tables are hash-distributed by their customer column and co-located with
	// tollgate.customers: every row of one customer, in every such table, is on the same worker, so a call
	// about one customer is answered there alone.
	Distributed Placement = "distributed"
	// Reference tables are copied to every node: the configuration that every call reads.
	Reference Placement = "reference"
	// Coordinator tables stay plain PostgreSQL tables on the coordinator: what only the sidecar and
	// tollgate migrate use, keyed by something other than the customer.
	Coordinator Placement = "coordinator"
)

// Table is the placement of one table of schema tollgate.
type Table struct {
	Name      string // in schema tollgate
	Placement Placement
	// Why is the reason, for docs/scaling.md and for whoever places the next table.
	Why string
	// Prepare runs before the table is distributed, only in the run that distributes it: the keys Citus
	// cannot keep go (a unique key or foreign key between distributed tables must include customer).
	// Statements run in the order of Tables.
	Prepare []string
	// Finish runs after every table is placed, only in the run that placed this one: the keys in their
	// cluster form.
	Finish []string
}

// Tables places every table of schema tollgate. A table that the migrations create and this list does
// not name makes Apply fail (and TestEveryTableIsPlaced, which runs without Citus): place new tables
// here, in the order their Prepare statements need.
var Tables = []Table{
	// The configuration: small, changed by tollgate apply, read by every call on every node.
	{Name: "settings", Placement: Reference, Why: "configuration read by the functions on every node"},
	{Name: "plans", Placement: Reference, Why: "configuration read by every call",
		Prepare: []string{dropBumpTrigger("plans")}},
	{Name: "features", Placement: Reference, Why: "configuration read by every call",
		Prepare: []string{dropBumpTrigger("features")}},
	{Name: "limits", Placement: Reference, Why: "configuration read by every call",
		Prepare: []string{dropBumpTrigger("limits")}},
	{Name: "routes", Placement: Reference, Why: "configuration read by the Django middleware"},
	{Name: "config_state", Placement: Reference,
		Why: "the configuration's version, compared by every call with the one its usage row copied"},

	// Per customer: distributed by customer, co-located with customers.
	{Name: "customers", Placement: Distributed,
		Why: "one row per customer; the anchor of the co-location group",
		// A unique key must include the distribution column: set_customer checks that a Stripe customer
		// belongs to one customer at a time instead, under an advisory lock on the coordinator.
		Prepare: []string{
			`ALTER TABLE tollgate.customers DROP CONSTRAINT IF EXISTS customers_stripe_customer_key`,
			`CREATE INDEX IF NOT EXISTS customers_stripe_customer ON tollgate.customers (stripe_customer)`,
		}},
	{Name: "usage", Placement: Distributed, Why: "the hot table: one row per customer and feature"},
	{Name: "usage_shards", Placement: Distributed, Why: "counts of unlimited features, per customer"},
	{Name: "usage_windows", Placement: Distributed, Why: "closed windows and rolling buckets, per customer"},
	{Name: "link_clicks", Placement: Distributed,
		Why: "upgrade-link clicks, read by the trigger on customers in the customer's transaction",
		// Before plan_changes, emails and events, whose keys change. As plan_changes: the references to events
		// and emails go, and plan_changes' to the clicks; the unique keys include customer under their names
		// (a token and a Checkout Session belong to one customer).
		Prepare: []string{
			`ALTER TABLE tollgate.plan_changes DROP CONSTRAINT IF EXISTS plan_changes_click_id_fkey`,
			`ALTER TABLE tollgate.link_clicks DROP CONSTRAINT IF EXISTS link_clicks_event_id_fkey`,
			`ALTER TABLE tollgate.link_clicks DROP CONSTRAINT IF EXISTS link_clicks_email_id_fkey`,
			`ALTER TABLE tollgate.link_clicks
			   DROP CONSTRAINT link_clicks_token_minute_key,
			   ADD CONSTRAINT link_clicks_token_minute_key UNIQUE (customer, token, minute),
			   DROP CONSTRAINT link_clicks_checkout_session_key,
			   ADD CONSTRAINT link_clicks_checkout_session_key UNIQUE (customer, checkout_session)`,
			replaceKey("link_clicks"),
		}},
	{Name: "plan_changes", Placement: Distributed,
		Why: "written by the trigger on customers, in the customer's transaction",
		// Citus refuses ON DELETE SET NULL on a key that includes the distribution column: the references to
		// emails and events go (tollgate never deletes either; see docs/scaling.md).
		Prepare: []string{
			`ALTER TABLE tollgate.plan_changes DROP CONSTRAINT IF EXISTS plan_changes_email_id_fkey`,
			`ALTER TABLE tollgate.plan_changes DROP CONSTRAINT IF EXISTS plan_changes_event_id_fkey`,
			replaceKey("plan_changes"),
		}},
	{Name: "emails", Placement: Distributed, Why: "the outbox rows of a customer's limit events",
		Prepare: []string{
			`ALTER TABLE tollgate.emails DROP CONSTRAINT IF EXISTS emails_event_id_fkey`,
			// a plain table cannot reference a distributed one (trial_conversions stays on the coordinator):
			// the trial prompt's email id stays, unchecked
			`ALTER TABLE tollgate.trial_conversions DROP CONSTRAINT IF EXISTS trial_conversions_email_id_fkey`,
			replaceKey("emails"),
		},
		Finish: []string{
			`ALTER TABLE tollgate.emails ADD CONSTRAINT emails_event_id_fkey FOREIGN KEY (customer, event_id)
			 REFERENCES tollgate.events (customer, id) ON DELETE CASCADE`,
		}},
	{Name: "events", Placement: Distributed, Why: "limit events, written by the customer's calls",
		Prepare: []string{replaceKey("events")}},
	{Name: "overrides", Placement: Distributed, Why: "a customer's own quotas, read by the customer's calls"},
	{Name: "grants", Placement: Distributed, Why: "a customer's granted units, spent by the customer's calls",
		// Citus cannot distribute a table with an identity column once it has become a Citus local table,
		// which a reference to features (a reference table by then) would make it: the reference goes
		// before, and comes back after
		Prepare: []string{`ALTER TABLE tollgate.grants DROP CONSTRAINT IF EXISTS grants_feature_fkey`},
		Finish: []string{`ALTER TABLE tollgate.grants ADD CONSTRAINT grants_feature_fkey FOREIGN KEY (feature)
			REFERENCES tollgate.features ON DELETE CASCADE`}},
	{Name: "idempotency_keys", Placement: Distributed, Why: "the verdicts of a customer's keyed calls"},
	{Name: "variant_assignments", Placement: Distributed, Why: "the prompt variant each customer was shown, per feature"},
	{Name: "topups", Placement: Reference, Why: "configuration: the top-up packs sold in Stripe"},
	{Name: "prompt_variants", Placement: Reference, Why: "configuration: the variants of each feature's upgrade prompt"},
	{Name: "link_keys", Placement: Reference, Why: "the upgrade links' key, read by upgrade_link on the customer's worker"},

	// On the coordinator: the sidecar's Stripe state and the install record.
	{Name: "subscriptions", Placement: Coordinator,
		Why: "keyed by Stripe subscription, with no customer until one is linked; written by the sidecar, whose " +
			"triggers then recompute the customer's plan on its worker"},
	{Name: "stripe_links", Placement: Coordinator, Why: "keyed by Stripe customer; the sidecar's"},
	{Name: "stripe_events", Placement: Coordinator, Why: "keyed by Stripe event; the sidecar's"},
	{Name: "sync_runs", Placement: Coordinator, Why: "the sidecar's reconcile runs"},
	{Name: "topup_purchases", Placement: Coordinator,
		Why: "keyed by Stripe object, with no customer until one is known; the sidecar's"},
	{Name: "code_package", Placement: Coordinator, Why: "the install record, read by tollgate migrate and /readyz"},
	{Name: "trial_conversions", Placement: Coordinator,
		Why: "keyed by Stripe subscription and trial; written by the trigger on subscriptions, on the coordinator " +
			"(its reference to emails goes before emails is distributed)"},
}

// Delegated are the functions the app calls about one customer: distributed functions whose call is sent
// whole to the worker that holds the customer (distribution argument "customer", co-located with
// tollgate.customers), so it costs one round trip from the coordinator.
var Delegated = []string{"consume", "check", "require", "refund", "note_blocked", "usage", "set_email_opt_out",
	"set_override", "clear_override", "grant", "record_topup", "upgrade_link"}

// NotDelegated are the functions with a customer argument that run on the coordinator, and why.
// TestEveryCustomerFunctionIsPlaced checks that each function with a customer argument is in Delegated or
// here.
var NotDelegated = map[string]string{
	"set_customer": "links a Stripe customer under an advisory lock taken on the coordinator, and relinks " +
		"subscriptions, which live there",
	"customer_summary": "reads the customer's subscriptions, which live on the coordinator",
	"record_click":     "the sidecar's: reads the Stripe customers linked to the customer, which live on the coordinator",
}

// replaceKey makes the primary key of a table with an identity id (customer, id): a key of a distributed
// table must include the distribution column. Ids stay unique (each node draws them from its own range).
func replaceKey(table string) string {
	return fmt.Sprintf(`ALTER TABLE tollgate.%[1]s DROP CONSTRAINT %[1]s_pkey, ADD CONSTRAINT %[1]s_pkey PRIMARY KEY (customer, id)`, table)
}

// dropBumpTrigger drops a configuration table's version trigger before the table becomes a reference
// table; Apply creates it again in its cluster form.
func dropBumpTrigger(table string) string {
	return fmt.Sprintf(`DROP TRIGGER IF EXISTS bump_config_version ON tollgate.%s`, table)
}

// configTables carry the trigger that bumps config_state (sql/config_version.sql).
var configTables = []string{"plans", "features", "limits"}

// TableNamed returns the placement of a table, or false when Tables does not name it.
func TableNamed(name string) (Table, bool) {
	for _, t := range Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}
