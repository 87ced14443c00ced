package djangotest

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tests/pgtest"
)

// TestShopAppTests runs the tests of an app that uses tollgate (tests/django/shop) the way its
// developers do: `manage.py test` with Django's own test-database creation and
// tollgate_django.testing.TollgateTestRunner, which installs tollgate (the CLI, built here) and the
// app's tollgate.yaml into the test database before the app's migrations. Django's user is a login
// role with CREATEDB that is a member of tollgate_app. The second run keeps the test database
// (--keepdb): tollgate is migrated and applied again, and the usage of the first run is gone.
func TestShopAppTests(t *testing.T) {
	t.Parallel()
	python := findPython(t)
	cli := buildCLI(t)
	for _, v := range djangoVersions(t) {
		t.Run("Django"+v.name, func(t *testing.T) {
			t.Parallel()
			testShop(t, python, cli, v)
		})
	}
}

func testShop(t *testing.T, python, cli string, v djangoVersion) {
	db := pgtest.NewDB(t)
	role := "tollgate_shop_" + db.Name
	admin := pgtest.Server(t).Admin()
	ctx := t.Context()
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN CREATEDB PASSWORD 'shop' IN ROLE tollgate_app`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, q := range []string{`DROP DATABASE IF EXISTS test_` + db.Name + ` WITH (FORCE)`, `DROP ROLE IF EXISTS ` + role} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "shop")

	helper, err := filepath.Abs("../../django")
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, python, helper, v)
	for _, args := range [][]string{{"--keepdb"}, {"--keepdb"}} {
		runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cmd := exec.CommandContext(runCtx, python, append([]string{"manage.py", "test", "--noinput", "-v", "2"}, args...)...)
		cmd.Dir = "shop"
		cmd.Env = append(v.env(helper),
			"SHOP_DATABASE_URL="+u.String(),
			"SHOP_TOLLGATE_COMMAND="+cli,
		)
		cmd.WaitDelay = 10 * time.Second
		out := &lineLogger{t: t}
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		out.flush()
		cancel()
		if err != nil {
			t.Fatalf("the shop's tests failed (manage.py test %v in tests/django/shop): %v", args, err)
		}
	}
}

// buildCLI builds the tollgate CLI into the test's temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tollgate")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../../cmd/tollgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tollgate: %v\n%s", err, out)
	}
	return bin
}
