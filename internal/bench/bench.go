// Package bench measures tollgate's hot path against baselines taken in the
// same run on the same server: SELECT 1, a plain single-row UPDATE and the
// best single-statement upsert with a limit check a hand-written query could
// do. Ratios, not absolute numbers, are what it reports: machines differ and
// are noisy; a ratio taken in one run is comparable.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scenario is one workload: a statement run by every client in a loop.
type Scenario struct {
	Name string
	// Doc says what it measures.
	Doc string
	// next returns the statement and arguments of one call; run names the
	// run (client count and commit mode), for scenarios that start each run
	// on a key of its own.
	next func(r *rand.Rand, run string) (string, []any)
}

// The customers each spread scenario picks from.
const Customers = 10000

func spreadCustomer(prefix string, r *rand.Rand) string {
	return fmt.Sprintf("%s%d", prefix, 1+r.IntN(Customers))
}

// windowStart is the fixed window of the upsert baseline.
var windowStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Scenarios, in the order they run.
var Scenarios = []Scenario{
	{"select1", "SELECT 1: the round trip, the floor", func(*rand.Rand, string) (string, []any) {
		return `SELECT 1`, nil
	}},
	{"update_spread", "a plain single-row UPDATE of a counter, over 10k rows", func(r *rand.Rand, _ string) (string, []any) {
		return `UPDATE bench_counter SET n = n + 1 WHERE id = $1`, []any{1 + r.IntN(Customers)}
	}},
	{"upsert_spread", "one statement that upserts a per-window counter with a limit check, over 10k customers",
		func(r *rand.Rand, _ string) (string, []any) {
			return `INSERT INTO bench_usage AS u (customer, feature, window_start, used) VALUES ($1, 'spread', $2, 1)
			        ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = u.used + 1
			        WHERE u.used + 1 <= $3 RETURNING used`,
				[]any{spreadCustomer("c", r), windowStart, int64(1_000_000_000)}
		}},
	{"upsert_function", "the upsert_spread statement alone in a SECURITY DEFINER plpgsql function with a pinned search_path, returning a verdict: the floor for any function under tollgate's security rules",
		func(r *rand.Rand, _ string) (string, []any) {
			return `SELECT allowed FROM bench_upsert_function($1)`, []any{spreadCustomer("c", r)}
		}},
	{"upsert_hot", "the upsert_spread statement with every client on one row: the naive limiter's hot customer",
		func(_ *rand.Rand, run string) (string, []any) {
			return `INSERT INTO bench_usage AS u (customer, feature, window_start, used) VALUES ($1, 'spread', $2, 1)
			        ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = u.used + 1
			        WHERE u.used + 1 <= $3 RETURNING used`,
				[]any{"hot_" + run, windowStart, int64(1_000_000_000_000)}
		}},
	{"read_function", "one indexed read of a usage row in a SECURITY DEFINER plpgsql function returning a verdict: the floor for a reject path",
		func(*rand.Rand, string) (string, []any) {
			return `SELECT allowed FROM bench_read_function('over', 'bench_reject')`, nil
		}},
	{"consume_spread", "tollgate.consume over 10k customers", func(r *rand.Rand, _ string) (string, []any) {
		return `SELECT allowed FROM tollgate.consume($1, 'bench_spread')`, []any{spreadCustomer("c", r)}
	}},
	// each run starts on a customer of its own, as upsert_hot does
	{"consume_hot", "tollgate.consume of a limited feature, every client on one customer: its calls commit one at a time, as with any row-lock limiter",
		func(_ *rand.Rand, run string) (string, []any) {
			return `SELECT allowed FROM tollgate.consume($1, 'bench_hot')`, []any{"hot_" + run}
		}},
	{"consume_hot_unlimited", "tollgate.consume of an unlimited feature (a paying customer), every client on one customer: calls count on the backend's shard",
		func(_ *rand.Rand, run string) (string, []any) {
			return `SELECT allowed FROM tollgate.consume($1, 'bench_unlimited')`, []any{"hotu_" + run}
		}},
	{"consume_reject", "tollgate.consume of a customer already over the limit", func(*rand.Rand, string) (string, []any) {
		return `SELECT allowed FROM tollgate.consume('over', 'bench_reject')`, nil
	}},
	{"consume_events", "tollgate.consume where one call in a hundred crosses a threshold (an event + NOTIFY)",
		func(r *rand.Rand, _ string) (string, []any) {
			return `SELECT allowed FROM tollgate.consume($1, 'bench_events')`, []any{spreadCustomer("e", r)}
		}},
	{"consume_events_worst", "tollgate.consume where every call crosses a threshold",
		func(r *rand.Rand, _ string) (string, []any) {
			return `SELECT allowed FROM tollgate.consume($1, 'bench_events_worst')`, []any{spreadCustomer("w", r)}
		}},
}

// Setup prepares a migrated database for the scenarios: plans, features,
// customers with usage rows, and the baseline tables. It runs as the owner.
const Setup = `
SELECT tollgate.define_plan('free', true);
SELECT tollgate.define_feature('bench_spread', '30d', 'hard', '{100}');
SELECT tollgate.set_limit('free', 'bench_spread', 1000000000);
SELECT tollgate.define_feature('bench_hot', '30d', 'hard', '{100}');
SELECT tollgate.set_limit('free', 'bench_hot', 1000000000000);
SELECT tollgate.define_feature('bench_unlimited', '30d', 'hard', '{100}');
SELECT tollgate.set_limit('free', 'bench_unlimited', NULL);
SELECT tollgate.define_feature('bench_reject', '30d', 'hard', '{100}');
SELECT tollgate.set_limit('free', 'bench_reject', 1);
-- a mark every 100 units: one call in a hundred crosses one
SELECT tollgate.define_feature('bench_events', '30d', 'hard', ARRAY(SELECT generate_series(1, 100)));
SELECT tollgate.set_limit('free', 'bench_events', 10000);
-- a mark at every unit: every call crosses one
SELECT tollgate.define_feature('bench_events_worst', '30d', 'hard', ARRAY(SELECT generate_series(1, 100)));
SELECT tollgate.set_limit('free', 'bench_events_worst', 100);
CREATE TABLE bench_counter (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0) WITH (fillfactor = 70);
INSERT INTO bench_counter (id) SELECT generate_series(1, 10000);
CREATE TABLE bench_usage (
  customer text, feature text, window_start timestamptz, used bigint NOT NULL,
  PRIMARY KEY (customer, feature, window_start)) WITH (fillfactor = 70);
INSERT INTO bench_usage SELECT 'c' || i, 'spread', '2026-01-01 00:00:00+00', 1 FROM generate_series(1, 10000) i;
-- the floors: the least a function can do under tollgate's security rules
-- (SECURITY DEFINER, search_path pinned, a verdict returned)
CREATE FUNCTION bench_upsert_function(p_customer text) RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
DECLARE v_used bigint;
BEGIN
  INSERT INTO public.bench_usage AS u (customer, feature, window_start, used)
  VALUES (p_customer, 'spread', '2026-01-01 00:00:00+00', 1)
  ON CONFLICT (customer, feature, window_start) DO UPDATE SET used = u.used + 1
  WHERE u.used + 1 <= 1000000000 RETURNING u.used INTO v_used;
  RETURN ROW(v_used IS NOT NULL, p_customer, 'spread', 'free', v_used, 1000000000, 1000000000 - v_used, NULL, NULL, 0)::tollgate.verdict;
END $f$;
CREATE FUNCTION bench_read_function(p_customer text, p_feature text) RETURNS tollgate.verdict
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
DECLARE v_used bigint; v_quota bigint; v_plan text; v_end timestamptz;
BEGIN
  SELECT u.used, u.quota, u.plan, u.window_end INTO v_used, v_quota, v_plan, v_end
    FROM tollgate.usage u WHERE u.customer = p_customer AND u.feature = p_feature;
  RETURN ROW(false, p_customer, p_feature, v_plan, v_used, v_quota, 0, v_end, NULL, 0)::tollgate.verdict;
END $f$;

`

// Seed gives the customers of the scenarios their usage rows, after Setup: one tollgate.consume call per
// customer, each a statement of its own, over a few connections at once (on a Citus cluster each call is
// then delegated to the customer's worker). Only the customers of the given scenarios are seeded.
func Seed(ctx context.Context, connString string, scenarios []Scenario) error {
	type call struct {
		customer, feature string
		amount            int64
	}
	runs := func(name string) bool {
		return slices.ContainsFunc(scenarios, func(s Scenario) bool { return s.Name == name })
	}
	var calls []call
	for i := 1; i <= Customers; i++ {
		if runs("consume_spread") {
			calls = append(calls, call{fmt.Sprintf("c%d", i), "bench_spread", 1})
		}
		if runs("consume_events") {
			// start each customer at its own offset so crossings are spread evenly over the run
			calls = append(calls, call{fmt.Sprintf("e%d", i), "bench_events", int64(1 + (i*37)%99)})
		}
		if runs("consume_events_worst") {
			calls = append(calls, call{fmt.Sprintf("w%d", i), "bench_events_worst", 1})
		}
	}
	const conns = 8
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for w := range conns {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, connString)
			if err != nil {
				errs[w] = err
				return
			}
			defer conn.Close(context.WithoutCancel(ctx))
			for i := w; i < len(calls); i += conns {
				if _, err := conn.Exec(ctx, `SELECT allowed FROM tollgate.consume($1, $2, $3)`,
					calls[i].customer, calls[i].feature, calls[i].amount); err != nil {
					errs[w] = fmt.Errorf("seed: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !runs("consume_reject") && !runs("read_function") {
		return nil
	}
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for range 2 { // the first blocked call writes its event
		if _, err := conn.Exec(ctx, `SELECT allowed FROM tollgate.consume('over', 'bench_reject')`); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

// Overquota counts usage rows over a hard quota: the bench fails if any is.
const Overquota = `SELECT count(*) FROM tollgate.usage u WHERE NOT u.soft AND u.quota IS NOT NULL AND u.used > u.quota`

// Result is one scenario at one client count and commit mode.
type Result struct {
	Scenario   string  `json:"scenario"`
	Clients    int     `json:"clients"`
	SyncCommit string  `json:"sync_commit"`
	TPS        float64 `json:"tps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Calls      int     `json:"calls"`
}

// Run runs scenario with clients connections to connString for d, each
// connection with synchronous_commit set to syncCommit ("on" or "off"), and
// prepared statements (pgx caches and prepares each statement).
func Run(ctx context.Context, connString string, sc Scenario, clients int, syncCommit string, d time.Duration) (Result, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return Result{}, err
	}
	cfg.RuntimeParams["synchronous_commit"] = syncCommit
	conns := make([]*pgx.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		if conns[i], err = pgx.ConnectConfig(ctx, cfg); err != nil {
			return Result{}, err
		}
	}
	run := fmt.Sprintf("%d_%s", clients, syncCommit)
	type worker struct {
		lat []time.Duration
		err error
	}
	workers := make([]worker, clients)
	// Every worker warms up (prepares its statement, lets the server cache
	// its plans), then waits; the clock starts once all of them are ready, so
	// a slow start never eats into the measured time. Each worker makes at
	// least one timed call.
	var warm, done sync.WaitGroup
	start := make(chan struct{})
	var deadline time.Time
	for i := range conns {
		warm.Add(1)
		done.Add(1)
		go func(i int) {
			defer done.Done()
			w := &workers[i]
			r := rand.New(rand.NewPCG(uint64(i), 42))
			conn := conns[i]
			for j := 0; j < 10 && w.err == nil; j++ {
				sql, args := sc.next(r, run)
				_, w.err = conn.Exec(ctx, sql, args...)
			}
			warm.Done()
			<-start
			w.lat = make([]time.Duration, 0, 4096)
			for w.err == nil {
				t0 := time.Now()
				sql, args := sc.next(r, run)
				_, w.err = conn.Exec(ctx, sql, args...)
				w.lat = append(w.lat, time.Since(t0))
				if t0.After(deadline) {
					return
				}
			}
		}(i)
	}
	warm.Wait()
	began := time.Now()
	deadline = began.Add(d)
	close(start)
	done.Wait()
	elapsed := time.Since(began)
	var all []time.Duration
	for _, w := range workers {
		if w.err != nil {
			return Result{}, fmt.Errorf("%s: %w", sc.Name, w.err)
		}
		all = append(all, w.lat...)
	}
	slices.Sort(all)
	res := Result{Scenario: sc.Name, Clients: clients, SyncCommit: syncCommit, Calls: len(all)}
	if len(all) > 0 {
		res.TPS = float64(len(all)) / elapsed.Seconds()
		res.P50ms = ms(all[len(all)*50/100])
		res.P99ms = ms(all[min(len(all)-1, len(all)*99/100)])
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Ratio is one of the product's performance targets, computed from results
// of the same run.
type Ratio struct {
	Name   string  `json:"ratio"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
	// Missing is set when the run lacks a result the ratio needs.
	Missing bool `json:"missing,omitempty"`
	// Note says what a context ratio stands for.
	Note string `json:"note,omitempty"`
}

// ratioSet computes ratios of results of one run: find looks a result up,
// add appends a ratio of two of them (Missing when either is absent).
type ratioSet struct {
	results []Result
	out     []Ratio
}

func (s *ratioSet) find(sc string, clients int, sync string) *Result {
	for i := range s.results {
		r := &s.results[i]
		if r.Scenario == sc && r.Clients == clients && r.SyncCommit == sync {
			return r
		}
	}
	return nil
}

func (s *ratioSet) add(name, target string, a, b *Result, value func(a, b *Result) float64, met func(float64) bool) {
	if a == nil || b == nil || a.Calls == 0 || b.Calls == 0 {
		s.out = append(s.out, Ratio{Name: name, Target: target, Missing: true})
		return
	}
	v := value(a, b)
	s.out = append(s.out, Ratio{Name: name, Value: v, Target: target, Met: met(v)})
}

func p50(a, b *Result) float64 { return a.P50ms / b.P50ms }
func tps(a, b *Result) float64 { return a.TPS / b.TPS }

// Ratios computes the targets of the SQL-core issue from results: each
// against a floor of the same run (the least any function can do under
// tollgate's security rules, or the naive limiter).
func Ratios(results []Result) []Ratio {
	s := &ratioSet{results: results}
	find, add := s.find, s.add
	atMost := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
	atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	add("consume_spread / upsert_function p50 latency, 1 client, sync off", "<= 1.15",
		find("consume_spread", 1, "off"), find("upsert_function", 1, "off"), p50, atMost(1.15))
	for _, sync := range []string{"off", "on"} {
		add("consume_spread / upsert_function tps, 8 clients, sync "+sync, ">= 0.85",
			find("consume_spread", 8, sync), find("upsert_function", 8, sync), tps, atLeast(0.85))
	}
	for _, sync := range []string{"off", "on"} {
		add("consume_reject / read_function tps, 8 clients, sync "+sync, ">= 0.9",
			find("consume_reject", 8, sync), find("read_function", 8, sync), tps, atLeast(0.9))
	}
	add("consume_hot_unlimited 32 clients / 1 client tps, sync on", ">= 1.0",
		find("consume_hot_unlimited", 32, "on"), find("consume_hot_unlimited", 1, "on"), tps, atLeast(1.0))
	add("consume_hot / upsert_hot tps, 32 clients, sync on", ">= 0.9",
		find("consume_hot", 32, "on"), find("upsert_hot", 32, "on"), tps, atLeast(0.9))
	for _, sync := range []string{"off", "on"} {
		add("consume_events / consume_spread tps, 8 clients, sync "+sync, ">= 0.9",
			find("consume_events", 8, sync), find("consume_spread", 8, sync), tps, atLeast(0.9))
	}
	return s.out
}

// Context computes the ratios that put the targets in perspective: the same
// quantities for the floors and for the naive limiter, measured in the same
// run. They have no target (Met is always false).
func Context(results []Result) []Ratio {
	s := &ratioSet{results: results}
	add := func(name, note string, a, b *Result, value func(a, b *Result) float64) {
		s.add(name, "", a, b, value, func(float64) bool { return false })
		s.out[len(s.out)-1].Note = note
	}
	add("upsert_function / upsert_spread p50 latency, 1 client, sync off", "what the function call itself costs",
		s.find("upsert_function", 1, "off"), s.find("upsert_spread", 1, "off"), p50)
	for _, sync := range []string{"off", "on"} {
		add("upsert_function / upsert_spread tps, 8 clients, sync "+sync, "the same, at 8 clients",
			s.find("upsert_function", 8, sync), s.find("upsert_spread", 8, sync), tps)
	}
	for _, sync := range []string{"off", "on"} {
		add("read_function / select1 tps, 8 clients, sync "+sync, "the reject floor against the round trip",
			s.find("read_function", 8, sync), s.find("select1", 8, sync), tps)
	}
	add("upsert_hot 32 clients / 1 client tps, sync on", "the naive limiter's hot customer",
		s.find("upsert_hot", 32, "on"), s.find("upsert_hot", 1, "on"), tps)
	add("consume_hot 32 clients / 1 client tps, sync on", "a limited hot customer: one commit at a time",
		s.find("consume_hot", 32, "on"), s.find("consume_hot", 1, "on"), tps)
	return s.out
}
