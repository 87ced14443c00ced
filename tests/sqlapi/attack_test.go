package sqlapi_test

// Attacks on tollgate's owner, made as the app role (a login role that is
// only a member of tollgate_app), against a database whose owner is the
// superuser and against one whose owner is an ordinary role. Every caller
// can create temporary types, casts, operators, domains and functions; none
// of them may ever run with the owner's rights.

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/tests/pgtest"
)

// ownerRole owns the databases of setupOwnedBy: no superuser, no CREATEROLE.
const ownerRole = "tollgate_test_owner"

// setupOwnedBy is setup on a database migrated by an ordinary login role
// that owns it (superuser false), or by the superuser (true).
func setupOwnedBy(t *testing.T, superuser bool) *bundle {
	t.Helper()
	if superuser {
		return setup(t)
	}
	ctx := context.Background()
	setup(t) // the template, and with it the test login roles, exist from here on
	db := pgtest.NewEmptyDB(t)
	admin := db.Pool(t)
	_, err := admin.Exec(ctx, `
		DO $$
		BEGIN
		  PERFORM pg_advisory_xact_lock(hashtext('tollgate_test_owner'));
		  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '`+ownerRole+`') THEN
		    CREATE ROLE `+ownerRole+` LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
		  END IF;
		END $$`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{db.Name}.Sanitize()+` OWNER TO `+ownerRole)
	require.NoError(t, err)
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.User(ownerRole)
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	_, err = schema.Migrate(ctx, conn, schema.Latest, nil)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	owner, err := pgxpool.New(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(owner.Close)
	var super bool
	require.NoError(t, owner.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
	require.False(t, super)
	b := &bundle{db: db, owner: owner}
	b.exec(t, `SELECT tollgate.define_plan('free', true)`)
	b.exec(t, `SELECT tollgate.define_plan('pro', false, '{price_pro}', 10)`)
	return b
}

// evilBody is the body of every attacker function: as the owner, each
// statement would succeed; as the app role, the first fails with 42501.
const evilBody = `
  UPDATE tollgate.limits SET quota = NULL;
  INSERT INTO pg_temp.loot SELECT c.email FROM tollgate.customers c;
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
  END IF;`

// attacks: the prepared objects, and the statement that springs each.
var attacks = []struct {
	name    string
	prepare []string
	spring  []string
}{
	{"cast to json read by to_jsonb (the reported attack)", []string{
		`CREATE TYPE pg_temp.evil AS ENUM ('x')`,
		`CREATE FUNCTION pg_temp.evil_json(pg_temp.evil) RETURNS json LANGUAGE plpgsql AS $f$ BEGIN ` + evilBody + ` RETURN '"x"'::json; END $f$`,
		`CREATE CAST (pg_temp.evil AS json) WITH FUNCTION pg_temp.evil_json(pg_temp.evil)`,
		`CREATE TEMP TABLE proj (owner_id text, e pg_temp.evil)`,
		`CREATE TRIGGER g AFTER INSERT OR UPDATE OR DELETE ON pg_temp.proj FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate('owner_id', 'api_calls')`,
	}, []string{`INSERT INTO pg_temp.proj VALUES ('victim', 'x')`}},
	{"cast to text of the customer column", []string{
		`CREATE TYPE pg_temp.evil AS ENUM ('victim')`,
		`CREATE FUNCTION pg_temp.evil_text(pg_temp.evil) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN ` + evilBody + ` RETURN 'victim'; END $f$`,
		`CREATE CAST (pg_temp.evil AS text) WITH FUNCTION pg_temp.evil_text(pg_temp.evil)`,
		`CREATE TEMP TABLE proj (owner_id pg_temp.evil)`,
		`CREATE TRIGGER g AFTER INSERT OR UPDATE OR DELETE ON pg_temp.proj FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate('owner_id', 'api_calls')`,
	}, []string{`INSERT INTO pg_temp.proj VALUES ('victim')`}},
	{"implicit cast of an argument to text", []string{
		`CREATE TYPE pg_temp.evil AS ENUM ('victim')`,
		`CREATE FUNCTION pg_temp.evil_text(pg_temp.evil) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN ` + evilBody + ` RETURN 'victim'; END $f$`,
		`CREATE CAST (pg_temp.evil AS text) WITH FUNCTION pg_temp.evil_text(pg_temp.evil) AS IMPLICIT`,
	}, []string{
		`SELECT tollgate.consume('victim'::pg_temp.evil, 'api_calls')`,
		`SELECT tollgate.set_customer('victim'::pg_temp.evil, 'v@example.test')`,
	}},
	{"operators of the customer column's type", []string{
		`CREATE TYPE pg_temp.evil AS (k text)`,
		`CREATE FUNCTION pg_temp.evil_eq(pg_temp.evil, pg_temp.evil) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN ` + evilBody + ` RETURN true; END $f$`,
		`CREATE FUNCTION pg_temp.evil_ne(pg_temp.evil, pg_temp.evil) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN ` + evilBody + ` RETURN false; END $f$`,
		`CREATE OPERATOR pg_temp.= (LEFTARG = pg_temp.evil, RIGHTARG = pg_temp.evil, FUNCTION = pg_temp.evil_eq)`,
		`CREATE OPERATOR pg_temp.<> (LEFTARG = pg_temp.evil, RIGHTARG = pg_temp.evil, FUNCTION = pg_temp.evil_ne)`,
		`CREATE TEMP TABLE proj (id int, owner_id pg_temp.evil)`,
		`CREATE TRIGGER g AFTER INSERT OR UPDATE OR DELETE ON pg_temp.proj FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate('owner_id', 'api_calls')`,
	}, []string{
		`INSERT INTO pg_temp.proj VALUES (1, ROW('victim'))`,
		`UPDATE pg_temp.proj SET owner_id = ROW('other')`,
		`DELETE FROM pg_temp.proj`,
	}},
	{"a domain whose check runs the attack when it is not run as the caller", []string{
		`CREATE FUNCTION pg_temp.evil_check(text) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN
		   IF current_user <> session_user THEN ` + evilBody + ` END IF; RETURN true; END $f$`,
		`CREATE DOMAIN pg_temp.evil_dom AS text CHECK (pg_temp.evil_check(VALUE))`,
		`CREATE TEMP TABLE proj (owner_id pg_temp.evil_dom)`,
		`CREATE TRIGGER g AFTER INSERT OR UPDATE OR DELETE ON pg_temp.proj FOR EACH ROW EXECUTE FUNCTION tollgate._row_gate('owner_id', 'api_calls')`,
	}, []string{
		`INSERT INTO pg_temp.proj VALUES ('victim')`,
		`UPDATE pg_temp.proj SET owner_id = 'other'`,
		`DELETE FROM pg_temp.proj`,
	}},
	{"attach_row_gate on a table of the attacker's types", []string{
		`CREATE TYPE pg_temp.evil AS ENUM ('victim')`,
		`CREATE FUNCTION pg_temp.evil_text(pg_temp.evil) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN ` + evilBody + ` RETURN 'victim'; END $f$`,
		`CREATE CAST (pg_temp.evil AS text) WITH FUNCTION pg_temp.evil_text(pg_temp.evil)`,
		`CREATE TEMP TABLE proj (owner_id pg_temp.evil)`,
		`INSERT INTO pg_temp.proj VALUES ('victim')`,
	}, []string{`SELECT tollgate.attach_row_gate('pg_temp.proj', 'owner_id', 'api_calls')`}},
}

// ownerState is what the attacks try to change, read as the superuser.
func ownerState(t *testing.T, b *bundle) string {
	t.Helper()
	var s string
	require.NoError(t, b.db.Pool(t).QueryRow(context.Background(), `
		SELECT concat_ws(' | ',
		  (SELECT string_agg(plan || ':' || feature || '=' || coalesce(quota::text, 'NULL'), ',' ORDER BY plan, feature) FROM tollgate.limits),
		  (SELECT string_agg(rolname || '=' || rolsuper, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('tollgate_app', 'tollgate_sidecar', 'tollgate_test_app')))`).Scan(&s))
	return s
}

func TestAttacksAsTheAppRoleNeverRunAsTheOwner(t *testing.T) {
	t.Parallel()
	for _, owner := range []struct {
		name      string
		superuser bool
	}{{"superuser owner", true}, {"ordinary owner", false}} {
		t.Run(owner.name, func(t *testing.T) {
			t.Parallel()
			b := setupOwnedBy(t, owner.superuser)
			b.feature(t, "api_calls", "lifetime", "hard", []int32{100}, ptr[int64](100))
			b.exec(t, `SELECT tollgate.set_customer('someone', 'someone@example.test', 'cus_Someone1')`)
			before := ownerState(t, b)
			require.Contains(t, before, "free:api_calls=100")
			ctx := context.Background()
			for _, a := range attacks {
				app := b.db.Conn(t, b.db.AppURL)
				// the loot table is open to every role, so an attack that runs as
				// the owner is stopped by nothing and shows
				_, err := app.Exec(ctx, `CREATE TEMP TABLE loot (email text); GRANT ALL ON pg_temp.loot TO PUBLIC`)
				require.NoError(t, err)
				for _, stmt := range a.prepare {
					_, err := app.Exec(ctx, stmt)
					require.NoError(t, err, "%s: %s", a.name, stmt)
				}
				for _, stmt := range a.spring {
					_, err := app.Exec(ctx, stmt)
					if err != nil {
						// the attacker's code ran, as the attacker: refused
						requireCode(t, err, "42501")
					}
					var looted int64
					require.NoError(t, app.QueryRow(ctx, `SELECT count(*) FROM pg_temp.loot`).Scan(&looted))
					require.Zero(t, looted, "%s: %s copied emails out", a.name, stmt)
					require.Equal(t, before, ownerState(t, b), "%s: %s changed what only the owner may", a.name, stmt)
				}
			}
		})
	}
}
