// Package djangotest runs the Django test project next to this file (tests/django) against a fresh
// tollgate database, with Django connecting as a member of tollgate_app, as an app would (and, for grants
// and overrides, as a member of tollgate_admin, as a support tool would).
//
// Go configures tollgate as the owner (plans, features, limits, routes, Stripe subscriptions), then
// runs `manage.py test` with Debian's python3-django and python3-psycopg2. The project's test runner
// migrates the Django apps into that database and runs the tests there, without a test database of
// its own (the app role may not create databases). Python's output goes to the test log.
package djangotest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// debianPackages are what the Django tests need on Debian 12; python3-psycopg (psycopg 3) and
// python3-djangorestframework are optional: their tests skip without them.
const debianPackages = "python3-django python3-psycopg2"

// config is what tests/django/demo/tests.py expects of tollgate, written as the owner.
const config = `
SELECT tollgate.define_plan('free', is_default => true);
SELECT tollgate.define_plan('pro', stripe_prices => ARRAY['price_pro_monthly']);
SELECT tollgate.define_feature('api_calls', '30d', 'hard', ARRAY[80, 100]);
SELECT tollgate.define_feature('exports', '30d');
SELECT tollgate.define_feature('projects', 'lifetime');
SELECT tollgate.set_limit(plan, feature, quota)
  FROM (VALUES ('free', 'api_calls', 100), ('free', 'exports', 3), ('free', 'projects', 3),
               ('pro', 'api_calls', NULL), ('pro', 'exports', NULL), ('pro', 'projects', NULL))
       AS l (plan, feature, quota);
SELECT tollgate.define_route('POST', '/api/features/*', 'exports');
SELECT tollgate.define_route('*', '/api/reports', 'exports', 2);
SELECT tollgate.define_route('*', '/drf/routed', 'exports');
SELECT tollgate.define_route('*', '/drf/routed-and-permission', 'exports');
INSERT INTO tollgate.subscriptions (stripe_subscription, stripe_customer, status, price_ids)
VALUES ('sub_pro', 'cus_pro', 'active', '{price_pro_monthly}'),
       ('sub_pro2', 'cus_pro2', 'active', '{price_pro_monthly}'),
       ('sub_pro3', 'cus_pro3', 'active', '{price_pro_monthly}');
-- upgrade links on, as the sidecar does at start-up (the key is derived from its TOLLGATE_LINK_SECRET)
SELECT tollgate.configure_upgrade_links('` + linkKey + `', 'https://billing.acme.test', interval '30 days');
`

// linkKey is the upgrade-link key of the test database; the Python tests verify links with it
// (TOLLGATE_DJANGO_LINK_KEY).
const linkKey = "6c696e6b2d6b65792d6f662d7468652d646a616e676f2d74657374732d2d2d21"

func TestDjango(t *testing.T) {
	t.Parallel()
	python := findPython(t)
	for _, v := range djangoVersions(t) {
		t.Run("Django"+v.name, func(t *testing.T) {
			t.Parallel()
			testDjango(t, python, v)
		})
	}
}

func testDjango(t *testing.T, python string, v djangoVersion) {
	db := pgtest.NewDB(t)
	db.Exec(t, config)
	// Django's tables belong to the app's own login role, as in production: it runs the migrations,
	// and attach_row_gate (SECURITY INVOKER) must be called by the table's owner.
	db.Exec(t, `GRANT CREATE ON SCHEMA public TO `+pgtest.AppRole)

	helper, err := filepath.Abs("../../django")
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, python, helper, v)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "manage.py", "test", "--noinput", "-v", "2")
	cmd.Env = append(v.env(helper),
		"TOLLGATE_DJANGO_DATABASE_URL="+db.AppURL,
		// a member of tollgate_admin only, as a support tool's database user: grants and overrides
		"TOLLGATE_DJANGO_ADMIN_URL="+db.AdminURL,
		// the owner's URL, for tests that read tables the app role may not (tollgate.events)
		"TOLLGATE_DJANGO_OWNER_URL="+db.URL,
		"TOLLGATE_DJANGO_LINK_KEY="+linkKey,
		"DJANGO_SETTINGS_MODULE=testproject.settings",
	)
	cmd.WaitDelay = 10 * time.Second
	out := &lineLogger{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.flush()
	if err != nil {
		t.Fatalf("Django tests failed (%s manage.py test in tests/django): %v", python, err)
	}
}

// djangoVersion is a Django the tests run against: Debian 12's (3.2, python3-django), or Django 4.2 LTS
// from bookworm-backports, unpacked by scripts/deps.sh into a directory of its own that goes first on
// PYTHONPATH.
type djangoVersion struct {
	name       string // "3.2", "4.2"
	pythonPath []string
}

// env is the environment of a Python process of the tests with this Django and the helper (django/).
func (v djangoVersion) env(helper string) []string {
	path := append([]string{helper}, v.pythonPath...)
	return append(os.Environ(),
		"PYTHONPATH="+strings.Join(path, string(os.PathListSeparator)),
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
	)
}

// djangoVersions are 3.2 (Debian's) and 4.2 (bookworm-backports: $TOLLGATE_DJANGO42_SITE, default
// ~/.cache/tollgate/django-4.2/site, as scripts/deps.sh test unpacks it). Without 4.2 its runs fail
// under CI=true and skip elsewhere.
//
// Django 4.2 prefers psycopg 3 when it imports, and refuses psycopg older than 3.1.8; Debian 12's
// python3-psycopg is 3.1.7. So Django 4.2 runs with psycopg2 here, with psycopg 3 hidden by a
// package of that name that fails to import (as if python3-psycopg were not installed).
func djangoVersions(t *testing.T) []djangoVersion {
	t.Helper()
	versions := []djangoVersion{{name: "3.2"}}
	site := os.Getenv("TOLLGATE_DJANGO42_SITE")
	if site == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache := os.Getenv("XDG_CACHE_HOME")
			if cache == "" {
				cache = filepath.Join(home, ".cache")
			}
			site = filepath.Join(cache, "tollgate", "django-4.2", "site")
		}
	}
	if _, err := os.Stat(filepath.Join(site, "django", "__init__.py")); err != nil {
		msg := "Django 4.2 is not unpacked in " + site + ": run scripts/deps.sh test (as root, it adds bookworm-backports)"
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal(msg)
		}
		t.Log(msg + "; the Django 4.2 runs are skipped")
		return versions
	}
	hide := filepath.Join(t.TempDir(), "no-psycopg3")
	if err := os.MkdirAll(filepath.Join(hide, "psycopg"), 0o755); err != nil {
		t.Fatal(err)
	}
	stub := "raise ImportError(\"tests/django hides psycopg 3: Debian 12's 3.1.7 is older than Django 4.2 accepts (3.1.8)\")\n"
	if err := os.WriteFile(filepath.Join(hide, "psycopg", "__init__.py"), []byte(stub), 0o644); err != nil {
		t.Fatal(err)
	}
	return append(versions, djangoVersion{name: "4.2", pythonPath: []string{site, hide}})
}

// checkVersion fails the test unless python imports Django v (and not another one) with v's environment.
func checkVersion(t *testing.T, python, helper string, v djangoVersion) {
	t.Helper()
	cmd := exec.Command(python, "-c", "import django; print(django.get_version())")
	cmd.Env = v.env(helper)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python with Django %s: %v", v.name, err)
	}
	if !strings.HasPrefix(strings.TrimSpace(string(out)), v.name+".") {
		t.Fatalf("Django %s was asked for, %s imports %s", v.name, python, out)
	}
}

// findPython returns an interpreter that imports django and a PostgreSQL driver (psycopg2, or
// psycopg 3 for Django 4.2 and later): $TOLLGATE_PYTHON, Debian's /usr/bin/python3 (python3 on PATH
// may be a pyenv without Debian's packages), or python3 on PATH. Without one the test fails in CI
// and skips elsewhere.
func findPython(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("TOLLGATE_PYTHON"), "/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if err := exec.Command(c, "-c", probe).Run(); err == nil {
			return c
		}
	}
	msg := "Django tests need python3 with Django and psycopg2: apt-get install " + debianPackages
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

const probe = `
import django
try:
    import psycopg2
except ImportError:
    import psycopg
`

// lineLogger writes the subprocess's output to the test log, a line at a time.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil { // no full line yet: keep it
			l.buf.Reset()
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.t.Log(strings.TrimRight(line, "\r\n"))
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(&l.buf)
	for sc.Scan() {
		l.t.Log(sc.Text())
	}
	l.buf.Reset()
}
