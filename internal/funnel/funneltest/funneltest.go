// Package funneltest fills a test database with a funnel whose stages all differ, for the tests of what shows
// the funnel (tollgate report, the funnel page). It writes the tables directly as the owner, so every number is
// chosen; tests/conversions proves that the real flow (consume, the outbox, the Stripe sync) writes such rows.
package funneltest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// SeedSQL: plans free (default) and pro, and within the last day
//
//	api:    40 customers crossed 80%, 25 of them hit the limit, 20 were prompted, 8 of those clicked an upgrade
//	        link, 6 converted after a prompt (1 to 6 hours after it)
//	export: 12 crossed 80%, 10 hit the limit, 9 were prompted (the 10th's email is dead), 2 converted after a
//	        prompt (1 and 2 hours after it), and the 10th converted without one
//	3 customers without events converted without a prompt
//	search: an experiment over the last 20 days, 100 customers on each of control and short, all prompted;
//	        20 and 40 clicked, 8 and 25 converted two days after their prompt
//
// two trials that ended 6 days ago (one converted), two subscriptions that give nobody a plan, and a top-up
// purchase waiting for its customer. Want is what tollgate.funnel gives for it.
const SeedSQL = `
SELECT tollgate.define_plan('free', true);
SELECT tollgate.define_plan('pro', false, '{price_pro}', 10);
INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start, created_at)
SELECT 'threshold', f.feature || '_' || i, f.feature, 'free', 80, 100, 80, date_trunc('month', now()), now() - interval '20 hours'
  FROM (VALUES ('api', 40), ('export', 12)) f(feature, n), generate_series(1, f.n) i;
INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start, created_at)
SELECT 'limit_reached', f.feature || '_' || i, f.feature, 'free', 101, 100, 100, date_trunc('month', now()), now() - interval '18 hours'
  FROM (VALUES ('api', 25), ('export', 10)) f(feature, n), generate_series(1, f.n) i;
INSERT INTO tollgate.emails (event_id, customer, feature, period_start, template, status, sent_at)
SELECT e.id, e.customer, e.feature, e.period_start, 'upgrade_prompt', 'sent', e.created_at + interval '1 minute'
  FROM tollgate.events e
 WHERE e.kind = 'limit_reached' AND split_part(e.customer, '_', 2)::int <= CASE e.feature WHEN 'api' THEN 20 ELSE 9 END;
INSERT INTO tollgate.emails (event_id, customer, feature, period_start, template, status, last_error)
SELECT e.id, e.customer, e.feature, e.period_start, 'upgrade_prompt', 'dead', 'gave up'
  FROM tollgate.events e WHERE e.kind = 'limit_reached' AND e.customer = 'export_10';
INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at, changed_at)
SELECT m.customer, 'free', 'pro', 'conversion', m.id, m.event_id, m.feature, m.sent_at,
       m.sent_at + split_part(m.customer, '_', 2)::int * interval '1 hour'
  FROM tollgate.emails m
 WHERE m.status = 'sent' AND split_part(m.customer, '_', 2)::int <= CASE m.feature WHEN 'api' THEN 6 ELSE 2 END;
INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, changed_at)
SELECT c, 'free', 'pro', 'conversion', now() - interval '2 hours'
  FROM unnest(ARRAY['export_10', 'walkin_1', 'walkin_2', 'walkin_3']) c;
INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
VALUES ('sub_orphan', 'cus_nobody', 'active', '{price_pro}'), ('sub_odd', 'cus_nobody', 'trialing', '{price_odd}');
INSERT INTO tollgate.topup_purchases (stripe_object, stripe_customer, price_ids, quantities, received_at)
VALUES ('in_waiting', 'cus_nobody', '{price_calls50}', '{2}', now() - interval '1 hour');
INSERT INTO tollgate.link_clicks (token, minute, customer, feature, clicked_at)
SELECT md5('api_' || i), now(), 'api_' || i, 'api', now() - interval '17 hours' FROM generate_series(1, 8) i;
-- two trials that ended 6 days ago, one converted (both canceled since: no plan, no plan change)
INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, customer, status, price_ids, trial_start, trial_end)
VALUES ('sub_trial1', 'cus_trial1', 'trial_1', 'canceled', '{price_pro}', date_trunc('day', now()) - interval '20 days', date_trunc('day', now()) - interval '6 days'),
       ('sub_trial2', 'cus_trial2', 'trial_2', 'canceled', '{price_pro}', date_trunc('day', now()) - interval '20 days', date_trunc('day', now()) - interval '6 days');
INSERT INTO tollgate.trial_conversions (stripe_subscription, customer, plan, trial_start, trial_end, converted_at)
SELECT stripe_subscription, customer, 'pro', trial_start, trial_end, trial_end FROM tollgate.subscriptions WHERE stripe_subscription = 'sub_trial1';
-- the experiment on search
SELECT tollgate.define_feature('search', 'month');
SELECT tollgate.define_variant('search', 'control', 50);
SELECT tollgate.define_variant('search', 'short', 50, 'Out of searches: one click to upgrade.');
INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start, created_at, variant)
SELECT 'limit_reached', 'search_' || v || '_' || i, 'search', 'free', 10, 10, 100, date_trunc('month', now()),
       now() - (20 - i % 20) * interval '1 day' + interval '1 hour', v
  FROM (VALUES ('control'), ('short')) s(v), generate_series(1, 100) i;
INSERT INTO tollgate.emails (event_id, customer, feature, period_start, template, status, sent_at, variant)
SELECT e.id, e.customer, e.feature, e.period_start, 'upgrade_prompt', 'sent', e.created_at + interval '1 minute', e.variant
  FROM tollgate.events e WHERE e.feature = 'search';
INSERT INTO tollgate.link_clicks (token, minute, customer, feature, variant, clicked_at)
SELECT md5(e.customer), now(), e.customer, 'search', e.variant, e.created_at + interval '10 minutes'
  FROM tollgate.events e
 WHERE e.feature = 'search' AND split_part(e.customer, '_', 3)::int <= CASE e.variant WHEN 'control' THEN 20 ELSE 40 END;
INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at, variant, changed_at)
SELECT m.customer, 'free', 'pro', 'conversion', m.id, m.event_id, m.feature, m.sent_at, m.variant,
       least(m.sent_at + interval '2 days', now() - interval '1 minute')
  FROM tollgate.emails m
 WHERE m.feature = 'search' AND split_part(m.customer, '_', 3)::int <= CASE m.variant WHEN 'control' THEN 8 ELSE 25 END;
`

// Want is the funnel of SeedSQL over a range that holds the last 30 days: hit_threshold, hit_limit, prompted,
// clicked, converted, attributed, organic per feature and for the total ("(total)").
var Want = map[string][7]int64{
	"api":     {40, 25, 20, 8, 6, 6, 0},
	"export":  {12, 10, 9, 0, 3, 2, 1},
	"search":  {200, 200, 200, 60, 33, 33, 0},
	"(total)": {252, 235, 229, 68, 45, 41, 4},
}

// WantExperiment is experiment_results of search over the last 30 days: hit_limit, prompted, clicked,
// converted for control and short. short converts 25% against control's 8%: a winner (p < 0.01).
var WantExperiment = map[string][4]int64{
	"control": {100, 100, 20, 8},
	"short":   {100, 100, 40, 25},
}

// Seed runs SeedSQL as the owner (pool connects as the superuser of a pgtest database).
func Seed(t testing.TB, owner *pgxpool.Pool) {
	t.Helper()
	_, err := owner.Exec(context.Background(), SeedSQL)
	require.NoError(t, err)
}
