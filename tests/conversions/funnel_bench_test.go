package conversions_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/funnel"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// benchSQL fills a database the size the funnel must stay fast on: 10 million usage rows (2 million customers
// times 5 features) and a year of about 1 million limit events. 100,000 customers each use 2 of the 5
// features and reach 80% of a feature's quota in about 2.5 of the 12 monthly windows; in half of those windows
// they go on to 100% and are blocked (limit_reached); 1 customer in 25 is on a paid plan. Each limit_reached
// event has an upgrade prompt (85% sent, 10% skipped, 5% dead); 1 sent prompt in 14 leads to a conversion 13
// hours to 16 days later; 8,000 customers convert without a prompt and 4,000 churn.
const benchSQL = `
SELECT tollgate.define_plan('free', true);
SELECT tollgate.define_plan('pro', false, '{price_pro}', 10);
SELECT tollgate.define_feature('f' || f, 'month', upgrade_prompt => 'upgrade_prompt') FROM generate_series(0, 4) f;
SELECT tollgate.set_limit('free', 'f' || f, 100) FROM generate_series(0, 4) f;
INSERT INTO tollgate.usage (customer, feature, window_start, window_end, used, plan, quota)
SELECT 'c' || c, 'f' || f, date_trunc('month', now()), date_trunc('month', now()) + interval '1 month',
       (c * 7 + f) % 120, 'free', 100
  FROM generate_series(1, 2000000) c CROSS JOIN generate_series(0, 4) f;
INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start, created_at, processed_at)
SELECT k.kind, 'c' || c, 'f' || f, CASE WHEN c % 25 = 0 THEN 'pro' ELSE 'free' END, 100, 100, k.threshold,
       w.start, w.start + k.after, w.start + k.after
  FROM generate_series(1, 100000) c, generate_series(0, 4) f, generate_series(0, 11) m,
       LATERAL (SELECT date_trunc('month', now()) - m * interval '1 month'
                       + (hashint4(c * 12 + m) & 511) * interval '1 hour' AS start) w,
       LATERAL (VALUES ('threshold', 80, interval '1 day'), ('threshold', 100, interval '2 days'),
                       ('limit_reached', 100, interval '2 days 1 hour')) k(kind, threshold, after)
 WHERE (c + f) % 5 < 2
   AND (hashint4(c * 60 + f * 12 + m) & 1023) < 213
   AND (k.threshold = 80 OR (hashint4(c + m * 7 + f) & 3) < 2)
   AND w.start + k.after < now();
INSERT INTO tollgate.emails (event_id, customer, feature, period_start, template, status, sent_at, created_at)
SELECT e.id, e.customer, e.feature, e.period_start, 'upgrade_prompt',
       CASE WHEN e.id % 20 < 17 THEN 'sent' WHEN e.id % 20 < 19 THEN 'skipped' ELSE 'dead' END,
       CASE WHEN e.id % 20 < 17 THEN e.created_at + interval '1 minute' END, e.created_at
  FROM tollgate.events e WHERE e.kind = 'limit_reached';
INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, email_id, event_id, feature, prompted_at, changed_at)
SELECT m.customer, 'free', 'pro', 'conversion', m.id, m.event_id, m.feature, m.sent_at,
       m.sent_at + (m.id % 29 + 1) * interval '13 hours'
  FROM tollgate.emails m WHERE m.status = 'sent' AND m.id % 14 = 0;
INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, changed_at)
SELECT 'c' || (100000 + i), 'free', 'pro', 'conversion', now() - i * interval '1 hour' FROM generate_series(1, 8000) i;
INSERT INTO tollgate.plan_changes (customer, from_plan, to_plan, kind, changed_at)
SELECT 'c' || (1 + (i * 7919) % 100000), 'pro', 'free', 'churn', now() - i * interval '2 hours'
  FROM generate_series(1, 4000) i;
`

// BenchmarkFunnel times tollgate.funnel over the last 30 days and over the whole year of benchSQL's data. Not
// part of the normal test run (it writes about 2.5 GB and takes minutes to set up):
//
//	go test ./tests/conversions -run '^$' -bench Funnel -benchtime 10x
func BenchmarkFunnel(b *testing.B) {
	db := pgtest.NewDB(b)
	ctx := context.Background()
	owner := db.Pool(b)
	start := time.Now()
	_, err := owner.Exec(ctx, benchSQL)
	require.NoError(b, err)
	_, err = owner.Exec(ctx, `VACUUM ANALYZE`)
	require.NoError(b, err)
	var usage, events, emails, changes int64
	require.NoError(b, owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM tollgate.usage), (SELECT count(*) FROM tollgate.events),
		(SELECT count(*) FROM tollgate.emails), (SELECT count(*) FROM tollgate.plan_changes)`).Scan(&usage, &events, &emails, &changes))
	b.Logf("generated %d usage rows, %d events, %d emails, %d plan changes in %s", usage, events, emails, changes,
		time.Since(start).Round(time.Second))
	require.EqualValues(b, 10_000_000, usage)
	require.InDelta(b, 1_000_000, events, 50_000)

	sidecar := db.Conn(b, db.SidecarURL)
	for _, days := range []int{30, 365} {
		b.Run(fmt.Sprintf("%dd", days), func(b *testing.B) {
			var rows []funnel.Row
			for b.Loop() {
				now := time.Now()
				rows, err = funnel.Query(ctx, sidecar, now.AddDate(0, 0, -days), now)
				require.NoError(b, err)
			}
			total := rows[len(rows)-1]
			b.Logf("%d days: %d hit a threshold, %d the limit, %d prompted, %d converted (%d after a prompt)",
				days, total.HitThreshold, total.HitLimit, total.Prompted, total.Converted, total.Attributed)
		})
	}
}
