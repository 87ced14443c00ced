-- The tollgate SQL API: a tern code package. Every object here can be
-- reinstalled whole (CREATE OR REPLACE): tollgate migrate installs it again
-- after the migrations whenever it changed (or run `tern code install sql`
-- after `tern migrate`). Tables live in migrations/.
--
-- Conventions: public functions are SECURITY DEFINER with a pinned search_path
-- and qualify every object they touch; internal helpers start with "_" and are
-- granted to nobody (except the trigger function _row_gate, which a caller of
-- attach_row_gate must be allowed to name in CREATE TRIGGER, and which cannot
-- be called otherwise); errors use SQLSTATE class TG (TG402, TG404, TG422).
-- Code that runs as the owner never converts, compares or formats a value of
-- a type the caller could define (CONTRIBUTING.md, "Security").

{{ template "args.sql" . }}
{{ template "window.sql" . }}
{{ template "variants.sql" . }}
{{ template "verdict.sql" . }}
{{ template "config_version.sql" . }}
{{ template "config.sql" . }}
{{ template "emit.sql" . }}
{{ template "crossed.sql" . }}
{{ template "shards.sql" . }}
{{ template "grants_spend.sql" . }}
{{ template "usage_row.sql" . }}
{{ template "rolling.sql" . }}
{{ template "raise_quota_exceeded.sql" . }}
{{ template "consume.sql" . }}
{{ template "check.sql" . }}
{{ template "require.sql" . }}
{{ template "note_blocked.sql" . }}
{{ template "refund.sql" . }}
{{ template "usage.sql" . }}
{{ template "idempotency.sql" . }}
{{ template "plan_for.sql" . }}
{{ template "refresh_customer.sql" . }}
{{ template "subscriptions_trigger.sql" . }}
{{ template "set_customer.sql" . }}
{{ template "row_gate.sql" . }}
{{ template "set_row_counts.sql" . }}
{{ template "attach_row_gate.sql" . }}
{{ template "define_plan.sql" . }}
{{ template "define_feature.sql" . }}
{{ template "set_limit.sql" . }}
{{ template "remove.sql" . }}
{{ template "routes.sql" . }}
{{ template "set_setting.sql" . }}
{{ template "entitlements.sql" . }}
{{ template "customer_summary.sql" . }}

-- Stripe sync (the sidecar's functions): add includes below this line.
{{ template "stripe_links.sql" . }}
{{ template "stripe_sync_subscription.sql" . }}
{{ template "stripe_events.sql" . }}
{{ template "stripe_sync_runs.sql" . }}
{{ template "stripe_topups.sql" . }}

-- Upgrade prompts (the email outbox): add includes below this line.
{{ template "email_opt_out.sql" . }}
{{ template "email_worker.sql" . }}
{{ template "email_collect.sql" . }}
{{ template "email_claim.sql" . }}
{{ template "email_begin.sql" . }}
{{ template "email_done.sql" . }}

-- Conversions and the funnel: add includes below this line.
{{ template "upgrade_links.sql" . }}
{{ template "conversion_trigger.sql" . }}
{{ template "funnel.sql" . }}
{{ template "funnel_attention.sql" . }}
{{ template "experiments.sql" . }}

-- Drop the functions the package no longer defines: after every file that
-- creates functions, before grants.sql (which touches every function).
{{ template "prune.sql" . }}

-- Revoke PUBLIC's EXECUTE from everything above.
{{ template "grants.sql" . }}

-- Last: record the install (the sha256 of this package's text).
{{ template "record_install.sql" . }}
