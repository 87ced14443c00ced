// Package citustest runs tests against a Citus cluster on this machine: a coordinator and two workers,
// each a throwaway cluster of its own (internal/pgserver) on its own port, started with
// shared_preload_libraries = 'citus' and joined with citus_set_coordinator_host and citus_add_node.
//
// Citus is a test dependency only: when the server binaries have no citus.so (Debian's PostgreSQL does not
// ship it; ../shared/citus/build.sh builds it), every test that asks for the cluster is skipped with the
// reason. A package's TestMain calls Main; each test takes a database of its own, distributed by
// tollgate migrate --citus:
//
//	func TestMain(m *testing.M) { citustest.Main(m) }
//
//	func TestConsume(t *testing.T) {
//		db := citustest.NewDB(t) // skips without Citus
//		app := db.Conn(t, db.AppURL)
//		...
//	}
package citustest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/citus"
	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// Workers is how many workers the cluster has.
const Workers = 2

// Settings are the server settings of every node: Citus, and prepared transactions for its two-phase
// commits across nodes.
var Settings = map[string]string{
	"shared_preload_libraries":  "citus",
	"max_prepared_transactions": "300",
	"track_functions":           "pl", // TestCallsAreDelegated counts where functions ran
}

var (
	mainCalled atomic.Bool
	stopped    atomic.Bool

	clusterOnce sync.Once
	theCluster  atomic.Pointer[Cluster]
	clusterErr  error
	dbSeq       atomic.Int64
)

// Available reports whether Citus is installed for the PostgreSQL that pgserver runs, and if not, why.
func Available() (bool, string) {
	binDir, err := pgserver.FindBinDir()
	if err != nil {
		return false, err.Error()
	}
	libDirs := []string{filepath.Join(filepath.Dir(binDir), "lib")}
	if out, err := exec.Command(filepath.Join(binDir, "pg_config"), "--pkglibdir").Output(); err == nil {
		libDirs = append([]string{strings.TrimSpace(string(out))}, libDirs...)
	}
	for _, dir := range libDirs {
		if _, err := os.Stat(filepath.Join(dir, "citus.so")); err == nil {
			return true, ""
		}
	}
	return false, fmt.Sprintf("Citus is not installed for the PostgreSQL in %s (no citus.so in %s): build it with "+
		"../shared/citus/build.sh (docs/scaling.md); `make test` never needs it", filepath.Dir(binDir), strings.Join(libDirs, " or "))
}

// Skip skips t unless Citus is installed.
func Skip(t testing.TB) {
	t.Helper()
	if ok, why := Available(); !ok {
		t.Skip("citustest: " + why)
	}
}

// Main runs the tests of a package (call it from TestMain), then stops the cluster and removes its
// directories, also on SIGINT or SIGTERM.
func Main(m *testing.M) {
	mainCalled.Store(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "citustest: %v: stopping the cluster\n", sig)
		shutdown()
		os.Exit(1)
	}()
	code := m.Run()
	signal.Stop(sigs)
	shutdown()
	os.Exit(code)
}

// Cluster is a coordinator and its workers.
type Cluster struct {
	Coordinator *pgserver.Server
	Workers     []*pgserver.Server
	// AdminURL is the superuser on the coordinator's database postgres, which has the citus extension and
	// knows the workers: what tollgate bench --database-url and citus.CreateDatabase want.
	AdminURL string
}

// Nodes are the coordinator, then the workers.
func (c *Cluster) Nodes() []*pgserver.Server {
	return append([]*pgserver.Server{c.Coordinator}, c.Workers...)
}

// Start starts a cluster of its own: the caller stops it.
func Start(ctx context.Context, logf func(string, ...any)) (*Cluster, error) {
	c := &Cluster{}
	servers := make([]*pgserver.Server, 1+Workers)
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			servers[i], errs[i] = pgserver.Start(ctx, pgserver.Options{Settings: Settings, Logf: logf})
		})
	}
	wg.Wait()
	c.Coordinator, c.Workers = servers[0], servers[1:]
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	for _, s := range servers {
		// The roles tollgate grants to and the test login roles exist on every node: Citus connects to a
		// worker as the session's user.
		if err := exec1(ctx, s.URL("postgres"), `CREATE EXTENSION citus`); err != nil {
			c.Stop()
			return nil, fmt.Errorf("citustest: CREATE EXTENSION citus on port %d: %w", s.Port(), err)
		}
		if err := exec1(ctx, s.URL("postgres"), rolesSQL); err != nil {
			c.Stop()
			return nil, fmt.Errorf("citustest: roles on port %d: %w", s.Port(), err)
		}
	}
	c.AdminURL = c.Coordinator.URL("postgres")
	conn, err := pgx.Connect(ctx, c.AdminURL)
	if err != nil {
		c.Stop()
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_catalog.citus_set_coordinator_host('127.0.0.1', $1)`, c.Coordinator.Port()); err != nil {
		c.Stop()
		return nil, fmt.Errorf("citustest: citus_set_coordinator_host: %w", err)
	}
	for _, w := range c.Workers {
		if _, err := conn.Exec(ctx, `SELECT pg_catalog.citus_add_node('127.0.0.1', $1)`, w.Port()); err != nil {
			c.Stop()
			return nil, fmt.Errorf("citustest: citus_add_node: %w", err)
		}
	}
	return c, nil
}

// Stop stops every node and removes its directory.
func (c *Cluster) Stop() error {
	var errs []error
	for _, s := range c.Nodes() {
		if s != nil {
			errs = append(errs, s.Stop())
		}
	}
	return errors.Join(errs...)
}

const rolesSQL = `
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['tollgate_app', 'tollgate_sidecar'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '` + pgtest.AppRole + `') THEN
    CREATE ROLE ` + pgtest.AppRole + ` LOGIN PASSWORD '` + pgtest.AppRole + `' IN ROLE tollgate_app;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '` + pgtest.SidecarRole + `') THEN
    CREATE ROLE ` + pgtest.SidecarRole + ` LOGIN PASSWORD '` + pgtest.SidecarRole + `' IN ROLE tollgate_sidecar;
  END IF;
END
$$`

func exec1(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Shared returns the test process's cluster, starting it on first use; it skips t without Citus.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	Skip(t)
	if !mainCalled.Load() {
		t.Fatal("citustest: the package's TestMain must call citustest.Main(m)")
	}
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := Start(ctx, nil)
		theCluster.Store(c)
		clusterErr = err
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	if stopped.Load() {
		t.Fatal("citustest: the cluster has been stopped")
	}
	return theCluster.Load()
}

func shutdown() {
	if stopped.Swap(true) {
		return
	}
	if c := theCluster.Load(); c != nil {
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "citustest:", err)
		}
	}
}

// DB is a database of its own for one test, on every node of the shared cluster, migrated and
// distributed by tollgate migrate --citus.
type DB struct {
	Name       string
	URL        string   // superuser on the coordinator
	AppURL     string   // pgtest.AppRole on the coordinator: a member of tollgate_app only
	SidecarURL string   // pgtest.SidecarRole on the coordinator: a member of tollgate_sidecar only
	WorkerURLs []string // superuser on each worker

	mu   sync.Mutex
	pool *pgxpool.Pool
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// joining serialises what tests do to the cluster's shared objects: creating a database and joining its
// nodes (citus_add_node copies every role, a cluster-wide object, to each worker), installing tollgate in it
// (its roles and grants reach every node) and dropping it. Tests that did this at once saw citus_add_node
// fail with "failure on connection marked as essential" now and then; a test's own statements stay
// parallel.
var joining sync.Mutex

// NewDB returns a database of its own on the shared cluster, migrated and distributed (citus.Migrate), and
// drops it from every node when the test ends. It skips t without Citus.
func NewDB(t testing.TB) *DB {
	t.Helper()
	db := NewEmptyDB(t)
	conn := db.Conn(t, db.URL)
	joining.Lock()
	_, err := citus.Migrate(t.Context(), conn, nil, nil, nil)
	joining.Unlock()
	if err != nil {
		t.Fatalf("citustest: tollgate migrate --citus: %v", err)
	}
	return db
}

// NewEmptyDB is NewDB without tollgate: a database with the citus extension on every node, joined into a
// cluster.
func NewEmptyDB(t testing.TB) *DB {
	t.Helper()
	c := Shared(t)
	name := fmt.Sprintf("tgc_%d_%s", dbSeq.Add(1), strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	joining.Lock()
	dbURL, err := citus.CreateDatabase(ctx, c.AdminURL, name)
	joining.Unlock()
	if err != nil {
		t.Fatalf("citustest: create database %s: %v", name, err)
	}
	db := &DB{Name: name, URL: dbURL}
	db.AppURL = roleURL(dbURL, pgtest.AppRole)
	db.SidecarURL = roleURL(dbURL, pgtest.SidecarRole)
	for _, w := range c.Workers {
		db.WorkerURLs = append(db.WorkerURLs, w.URL(name))
	}
	t.Cleanup(func() {
		db.mu.Lock()
		if db.pool != nil {
			db.pool.Close()
		}
		db.mu.Unlock()
		if stopped.Load() {
			return
		}
		joining.Lock()
		defer joining.Unlock()
		if err := citus.DropDatabase(context.Background(), c.AdminURL, name); err != nil {
			t.Errorf("citustest: drop database %s: %v", name, err)
		}
	})
	return db
}

func roleURL(dbURL, role string) string {
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(role, role)
	return u.String()
}

// Pool is a superuser pool on the coordinator's database, closed when the test ends.
func (db *DB) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.pool == nil {
		pool, err := pgxpool.New(context.Background(), db.URL)
		if err != nil {
			t.Fatalf("citustest: pool on %s: %v", db.Name, err)
		}
		db.pool = pool
	}
	return db.pool
}

// Conn is a dedicated connection with the given URL, closed when the test ends.
func (db *DB) Conn(t testing.TB, connURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connURL)
	if err != nil {
		t.Fatalf("citustest: connect to %s: %v", db.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Close(ctx)
	})
	return conn
}

// Exec runs sql as the superuser on the coordinator and fails the test on error.
func (db *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool(t).Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("citustest: %v\n%s", err, sql)
	}
}
