// Package pgtest gives each test its own PostgreSQL database.
//
// A package's TestMain calls Main. The first NewDB starts one throwaway cluster for the test process
// (internal/pgserver), or uses the server at TOLLGATE_TEST_DATABASE_URL, and migrates a template
// database once with all migrations. Every NewDB then clones that template (CREATE DATABASE ...
// TEMPLATE), which takes milliseconds, and drops the clone when the test ends:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestConsume(t *testing.T) {
//		t.Parallel()
//		db := pgtest.NewDB(t)
//		app := db.Conn(t, db.AppURL) // logs in as a member of tollgate_app only
//		...
//	}
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
)

// EnvDatabaseURL names a superuser URL of an existing server to test against instead of starting one.
// Databases created there get unique names and are dropped at the end.
const EnvDatabaseURL = "TOLLGATE_TEST_DATABASE_URL"

// The login roles tests connect as. They are cluster-wide and created once, when the template is
// migrated; their password is their name (ignored by the throwaway cluster, which trusts local
// connections).
const (
	AppRole     = "tollgate_test_app"     // member of tollgate_app only
	SidecarRole = "tollgate_test_sidecar" // member of tollgate_sidecar only
	AdminRole   = "tollgate_test_admin"   // member of tollgate_admin only
)

var (
	mainCalled atomic.Bool
	stopped    atomic.Bool

	clusterOnce sync.Once
	theCluster  atomic.Pointer[Cluster]
	clusterErr  error

	createMu sync.Mutex // serializes CREATE DATABASE: a template cannot be copied twice at once
	dbSeq    atomic.Int64
)

// Main runs the tests of a package (call it from TestMain), then stops the server and removes its
// directory. On SIGINT or SIGTERM it cleans up the same way and exits non-zero.
func Main(m *testing.M) {
	mainCalled.Store(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "pgtest: %v: stopping PostgreSQL\n", sig)
		shutdown()
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
	code := m.Run()
	signal.Stop(sigs)
	shutdown()
	os.Exit(code)
}

// Cluster is the PostgreSQL server the test process uses.
type Cluster struct {
	srv      *pgserver.Server // nil when external
	base     *url.URL         // superuser URL; the path is replaced per database
	binDir   string
	admin    *pgxpool.Pool // superuser, on the maintenance database
	external bool
	tag      string // makes database names unique on a shared server
	strategy string // " STRATEGY FILE_COPY" from PostgreSQL 15 on: faster than WAL_LOG for small databases

	tplOnce sync.Once
	tpl     string
	tplErr  error
	tplName atomic.Pointer[string] // the template to drop at shutdown, once created
}

// Server returns the cluster, starting it on first use.
func Server(t testing.TB) *Cluster {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main(m)")
	}
	clusterOnce.Do(func() {
		c, err := startCluster()
		theCluster.Store(c)
		clusterErr = err
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	if stopped.Load() {
		t.Fatal("pgtest: the server has been stopped")
	}
	return theCluster.Load()
}

func startCluster() (*Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c := &Cluster{}
	var tag [3]byte
	rand.Read(tag[:])
	c.tag = fmt.Sprintf("%d%s", os.Getpid(), hex.EncodeToString(tag[:]))

	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvDatabaseURL)
		}
		c.base, c.external = u, true
		if dir, err := pgserver.FindBinDir(); err == nil {
			c.binDir = dir
		}
	} else {
		srv, err := pgserver.Start(ctx, pgserver.Options{})
		if err != nil {
			return nil, err
		}
		c.srv, c.binDir = srv, srv.BinDir()
		c.base, _ = url.Parse(srv.URL("postgres"))
	}
	maintenance := strings.TrimPrefix(c.base.Path, "/")
	if maintenance == "" {
		maintenance = "postgres"
	}
	admin, err := pgxpool.New(ctx, c.URL(maintenance))
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		if c.srv != nil {
			c.srv.Stop()
		}
		return nil, fmt.Errorf("pgtest: connect to the test server: %w", err)
	}
	c.admin = admin
	if _, err := admin.Exec(ctx, groupRolesSQL); err != nil {
		admin.Close()
		if c.srv != nil {
			c.srv.Stop()
		}
		return nil, fmt.Errorf("pgtest: create tollgate's roles: %w", err)
	}
	var version int
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err == nil && version >= 150000 {
		c.strategy = " STRATEGY FILE_COPY"
	}
	return c, nil
}

// shutdown drops the template of a shared server, or stops the throwaway one.
func shutdown() {
	if stopped.Swap(true) {
		return
	}
	c := theCluster.Load()
	if c == nil {
		return
	}
	if tpl := c.tplName.Load(); c.external && tpl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{*tpl}.Sanitize()+" WITH (FORCE)")
		cancel()
	}
	c.admin.Close()
	if c.srv != nil {
		if err := c.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
}

// URL is the superuser URL of dbname on this cluster.
func (c *Cluster) URL(dbname string) string { return c.roleURL(dbname, nil) }

func (c *Cluster) roleURL(dbname string, user *url.Userinfo) string {
	u := *c.base
	u.Path = "/" + dbname
	u.RawPath = ""
	if user != nil {
		u.User = user
	}
	return u.String()
}

// BinDir is the directory of the PostgreSQL programs (pg_dump, psql); "" if none was found for an
// external server.
func (c *Cluster) BinDir() string { return c.binDir }

// Bin is the path of a PostgreSQL program of the cluster's version, e.g. Bin("pg_dump").
func (c *Cluster) Bin(name string) string {
	if c.binDir == "" {
		return name
	}
	return c.binDir + "/" + name
}

// Admin is a superuser pool on the maintenance database (for cluster-wide statements).
func (c *Cluster) Admin() *pgxpool.Pool { return c.admin }

// External reports whether the cluster is the server at TOLLGATE_TEST_DATABASE_URL.
func (c *Cluster) External() bool { return c.external }

// template migrates the template database on first use.
func (c *Cluster) template() (string, error) {
	c.tplOnce.Do(func() {
		name := "tollgate_template"
		if c.external {
			name = "tollgate_tpl_" + c.tag
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c.tplErr = c.prepareTemplate(ctx, name)
		var me *schema.MigrationError
		switch {
		case c.tplErr == nil:
			c.tpl = name
		case errors.As(c.tplErr, &me):
			c.tplErr = errors.New("pgtest: the template database does not migrate: " + strings.TrimRight(me.Report(), "\n"))
		default:
			c.tplErr = fmt.Errorf("pgtest: prepare the template database: %w", c.tplErr)
		}
	})
	return c.tpl, c.tplErr
}

func (c *Cluster) prepareTemplate(ctx context.Context, name string) error {
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return err
	}
	c.tplName.Store(&name)
	conn, err := pgx.Connect(ctx, c.URL(name))
	if err != nil {
		return err
	}
	_, err = schema.Migrate(ctx, conn, schema.Latest, nil)
	if cerr := conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = c.admin.Exec(ctx, loginRolesSQL)
	return err
}

// groupRolesSQL creates tollgate's cluster-wide roles once per test server, before any test migrates a
// database: the tests of a package migrate many databases of one server at once, and a run saw migration
// 007 fail with 42704 (role "tollgate_admin" does not exist) on the template while other tests' migrations
// were creating that role; the cause in PostgreSQL was not pinned down. The migrations' own creation path
// still runs wherever a server is new to tollgate: tollgate demo and tollgate dev, and their tests.
const groupRolesSQL = `
DO $$
DECLARE
  r text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('tollgate pgtest login roles'));
  FOREACH r IN ARRAY ARRAY['tollgate_app', 'tollgate_sidecar', 'tollgate_admin'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END
$$`

// loginRolesSQL creates (or resets) the test login roles, each a member of exactly one tollgate role.
// Roles are cluster-wide and several test processes may share a server: an advisory lock serializes
// them.
const loginRolesSQL = `
DO $$
DECLARE
  login text;
  grp text;
  other text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('tollgate pgtest login roles'));
  FOR login, grp IN VALUES ('` + AppRole + `', 'tollgate_app'), ('` + SidecarRole + `', 'tollgate_sidecar'),
                           ('` + AdminRole + `', 'tollgate_admin') LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = login) THEN
      EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', login, login);
    ELSE
      EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', login, login);
    END IF;
    FOR other IN
      SELECT r.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
      WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = login) AND r.rolname <> grp
    LOOP
      EXECUTE format('REVOKE %I FROM %I', other, login);
    END LOOP;
    IF NOT pg_catalog.pg_has_role(login, grp, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO %I', grp, login);
    END IF;
  END LOOP;
END
$$`

// DB is a database of its own for one test.
type DB struct {
	Name       string
	URL        string // superuser postgres (the owner of everything the migrations create)
	AppURL     string // AppRole: what a Django app's database user can do
	SidecarURL string // SidecarRole: what the sidecar can do
	AdminURL   string // AdminRole: what a support tool can do

	mu   sync.Mutex
	pool *pgxpool.Pool
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

func (c *Cluster) newName(t testing.TB) string {
	n := dbSeq.Add(1)
	prefix := fmt.Sprintf("tg_%d_", n)
	if c.external {
		prefix = fmt.Sprintf("tg_%s_%d_", c.tag, n)
	}
	name := prefix + strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// NewDB returns a fresh database with all migrations applied, dropped when the test ends. It is safe
// to call from parallel tests.
func NewDB(t testing.TB) *DB {
	t.Helper()
	c := Server(t)
	tpl, err := c.template()
	if err != nil {
		t.Fatal(err)
	}
	return c.newDB(t, tpl)
}

// NewEmptyDB returns a fresh database without any migration (for migration tests), dropped when the
// test ends. The login roles of AppURL and SidecarURL exist only once some NewDB has run in the process.
func NewEmptyDB(t testing.TB) *DB {
	t.Helper()
	return Server(t).newDB(t, "template0")
}

func (c *Cluster) newDB(t testing.TB, template string) *DB {
	t.Helper()
	db := &DB{Name: c.newName(t)}
	db.URL = c.URL(db.Name)
	db.AppURL = c.roleURL(db.Name, url.UserPassword(AppRole, AppRole))
	db.SidecarURL = c.roleURL(db.Name, url.UserPassword(SidecarRole, SidecarRole))
	db.AdminURL = c.roleURL(db.Name, url.UserPassword(AdminRole, AdminRole))

	ident := pgx.Identifier{db.Name}.Sanitize()
	createMu.Lock()
	_, err := c.admin.Exec(t.Context(), "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{template}.Sanitize()+c.strategy)
	createMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database %s: %v", db.Name, err)
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
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", db.Name, err)
		}
	})
	return db
}

// Pool is a superuser pool on the database, shared by the test and closed when it ends.
func (db *DB) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.pool == nil {
		pool, err := pgxpool.New(context.Background(), db.URL)
		if err != nil {
			t.Fatalf("pgtest: pool on %s: %v", db.Name, err)
		}
		db.pool = pool
	}
	return db.pool
}

// Conn is a dedicated connection to the database with the given URL (db.URL, db.AppURL, db.SidecarURL
// or a URL of your own), closed when the test ends.
func (db *DB) Conn(t testing.TB, connURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Close(ctx)
	})
	return conn
}

// Exec runs sql as the superuser and fails the test on error.
func (db *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool(t).Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, sql)
	}
}
