package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/bench"
	"github.com/tollgate/tollgate/internal/citus"
	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
)

const benchUsage = `usage: tollgate bench [--database-url URL] [--clients 1,8,32] [--duration 10s] [--sync off,on]
                      [--scenarios a,b] [--json]

Measures tollgate.consume against baselines taken in the same run on the same server (SELECT 1, a
plain UPDATE, the best hand-written upsert with a limit check, that upsert on one hot row, and the
floors: the least a SECURITY DEFINER function with a pinned search_path can do), at each client count, with
synchronous_commit off and on, and prints throughput, p50 and p99 latency, then the ratios that are
tollgate's performance targets. Speed is only ever compared within one run.

Without --database-url it starts a throwaway PostgreSQL on disk with fsync on (so synchronous_commit
means what it means in production). With it, it creates a scratch database on that server (the role
needs CREATEDB), and drops it at the end. When that database has the citus extension and knows its
workers (the coordinator of a Citus cluster), the scratch database is created on every node and
tollgate is distributed in it as tollgate migrate --citus does (docs/scaling.md).

  --database-url URL  a server to run on; default: a throwaway one
  --clients LIST      client counts (default 1,8,32)
  --duration D        per scenario, client count and commit mode (default 10s)
  --sync LIST         synchronous_commit modes (default off,on)
  --scenarios LIST    scenarios to run (default all: ` + "%s" + `)
  --json              one JSON object per result on stdout; the summary goes to stderr
`

func init() {
	register(command{name: "bench", summary: "measure consume against baselines in one run and report the ratios", run: runBench})
}

func benchHelp() string {
	names := make([]string, len(bench.Scenarios))
	for i, s := range bench.Scenarios {
		names[i] = s.Name
	}
	return fmt.Sprintf(benchUsage, strings.Join(names, ","))
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("bench", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dbURL := flags.String("database-url", "", "")
	clientsFlag := flags.String("clients", "1,8,32", "")
	duration := flags.Duration("duration", 10*time.Second, "")
	syncFlag := flags.String("sync", "off,on", "")
	scenariosFlag := flags.String("scenarios", "", "")
	asJSON := flags.Bool("json", false, "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, benchHelp())
			return 0
		}
		fmt.Fprintf(stderr, "tollgate bench: %v\n\n%s", err, benchHelp())
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tollgate bench: "+format+"\n", a...)
		return 2
	}
	if flags.NArg() > 0 {
		return bad("unexpected argument %q", flags.Arg(0))
	}
	var clients []int
	for _, s := range strings.Split(*clientsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 256 {
			return bad("--clients: %q is not a client count from 1 to 256", s)
		}
		clients = append(clients, n)
	}
	var syncs []string
	for _, s := range strings.Split(*syncFlag, ",") {
		if s = strings.TrimSpace(s); s != "on" && s != "off" {
			return bad("--sync: %q is not on or off", s)
		}
		syncs = append(syncs, s)
	}
	if *duration <= 0 {
		return bad("--duration must be positive")
	}
	scenarios := bench.Scenarios
	if *scenariosFlag != "" {
		scenarios = nil
		for _, name := range strings.Split(*scenariosFlag, ",") {
			found := false
			for _, s := range bench.Scenarios {
				if s.Name == strings.TrimSpace(name) {
					scenarios, found = append(scenarios, s), true
				}
			}
			if !found {
				return bad("--scenarios: unknown scenario %q", name)
			}
		}
	}

	progress := stderr
	server := *dbURL
	if server == "" {
		fmt.Fprintln(progress, "starting a throwaway PostgreSQL on disk (fsync on)...")
		srv, err := pgserver.Start(ctx, pgserver.Options{
			TempRoot: os.TempDir(),
			Settings: map[string]string{"fsync": "on", "full_page_writes": "on"},
		})
		if err != nil {
			fmt.Fprintf(stderr, "tollgate bench: %v\n", err)
			return 1
		}
		defer srv.Stop()
		server = srv.URL("postgres")
	}
	dbName := fmt.Sprintf("tollgate_bench_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	benchURL, err := withDatabase(server, dbName)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate bench: --database-url: %v\n", err)
		return 2
	}
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate bench: %v\n", err)
		return 1
	}
	defer admin.Close(context.Background())
	onCluster, err := citus.HasExtension(ctx, admin)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate bench: %v\n", err)
		return 1
	}
	if onCluster {
		_, workers, err := citus.Nodes(ctx, admin)
		if err != nil {
			fmt.Fprintf(stderr, "tollgate bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(progress, "a Citus cluster: the coordinator and %d workers; tollgate is distributed in the scratch database\n", len(workers))
		if benchURL, err = citus.CreateDatabase(ctx, server, dbName); err != nil {
			fmt.Fprintf(stderr, "tollgate bench: creating the scratch database: %v\n", err)
			return 1
		}
		defer citus.DropDatabase(context.Background(), server, dbName)
	} else {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize()); err != nil {
			fmt.Fprintf(stderr, "tollgate bench: creating the scratch database: %v\n", err)
			return 1
		}
		defer admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
	}

	results, err := benchRun(ctx, benchURL, onCluster, scenarios, clients, syncs, *duration, progress, func(r bench.Result) {
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "tollgate bench: %v\n", err)
		return 1
	}
	out := stdout
	if *asJSON {
		out = stderr
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tclients\tsync_commit\ttps\tp50 ms\tp99 ms\t")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.3f\t%.3f\t\n", r.Scenario, r.Clients, r.SyncCommit, r.TPS, r.P50ms, r.P99ms)
		}
		tw.Flush()
	}
	fmt.Fprintln(out, "\nratios (same run):")
	for _, r := range bench.Ratios(results) {
		switch {
		case r.Missing:
			fmt.Fprintf(out, "  %-66s n/a (not measured in this run)\n", r.Name)
		default:
			verdict := "met"
			if !r.Met {
				verdict = "NOT met"
			}
			fmt.Fprintf(out, "  %-66s %6.2f  target %s: %s\n", r.Name, r.Value, r.Target, verdict)
		}
	}
	fmt.Fprintln(out, "\nfor perspective (same run, no targets):")
	for _, r := range bench.Context(results) {
		if r.Missing {
			fmt.Fprintf(out, "  %-66s n/a (not measured in this run)\n", r.Name)
		} else {
			fmt.Fprintf(out, "  %-66s %6.2f  %s\n", r.Name, r.Value, r.Note)
		}
	}
	fmt.Fprintln(out, "exactness: after every run, no customer was over a hard quota (over-admissions: 0)")
	return 0
}

// benchRun migrates and prepares the scratch database, then runs every
// scenario at every client count and commit mode, checking exactness at the end.
func benchRun(ctx context.Context, dbURL string, onCluster bool, scenarios []bench.Scenario, clients []int, syncs []string,
	d time.Duration, progress io.Writer, each func(bench.Result)) ([]bench.Result, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if onCluster {
		_, err = citus.Migrate(ctx, conn, nil, nil, nil)
	} else {
		_, err = schema.Migrate(ctx, conn, schema.Latest, nil)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(progress, "preparing 10k customers per scenario...")
	if _, err := conn.Exec(ctx, bench.Setup); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if err := bench.Seed(ctx, dbURL, scenarios); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, err
	}
	// The sidecar listens while the app consumes: so does the bench.
	listenCtx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "LISTEN tollgate_events"); err != nil {
		return nil, err
	}
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for {
			if _, err := listener.WaitForNotification(listenCtx); err != nil {
				return
			}
		}
	}()
	defer func() { stopListening(); <-listening }()

	var results []bench.Result
	for _, sync := range syncs {
		for _, n := range clients {
			for _, sc := range scenarios {
				fmt.Fprintf(progress, "  %-22s clients=%-3d sync_commit=%-3s ", sc.Name, n, sync)
				r, err := bench.Run(ctx, dbURL, sc, n, sync, d)
				if err != nil {
					fmt.Fprintln(progress)
					return nil, err
				}
				fmt.Fprintf(progress, "%8.0f tps\n", r.TPS)
				results = append(results, r)
				each(r)
				var over int64
				if err := conn.QueryRow(ctx, bench.Overquota).Scan(&over); err != nil {
					return nil, err
				}
				if over > 0 {
					return results, fmt.Errorf("exactness: after %s, %d usage rows were over their hard quota", sc.Name, over)
				}
			}
		}
	}
	return results, nil
}

// withDatabase returns connString pointing at database name.
func withDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// key=value form: a later dbname wins
	return connString + " dbname=" + name, nil
}
