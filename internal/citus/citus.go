// Package citus runs tollgate on a Citus cluster (docs/scaling.md).
//
// `tollgate migrate --citus` migrates the database on the coordinator as usual, then places every table of
// schema tollgate as Tables says (distributed by customer and co-located with tollgate.customers, a
// reference table, or a plain table on the coordinator), installs the few functions a cluster needs in
// another form (overrides.sql), and makes every function of the schema a distributed function, the ones
// in Delegated delegated by their customer argument: a call such as
//
//	SELECT * FROM tollgate.consume('user-42', 'api_calls')
//
// is then sent whole to the worker that holds user-42 and answered there, in one round trip from the
// coordinator. Whenever a later tollgate migrate installs the code package again, the same step runs in the
// package's transaction, so no session ever sees the package without its cluster form.
package citus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/migrations"
	sqlapi "github.com/tollgate/tollgate/sql"
)

//go:embed overrides.sql
var overridesSQL string

// ErrNoCitus is returned (wrapped) when the database has no citus extension.
var ErrNoCitus = errors.New("the database has no citus extension: CREATE EXTENSION citus on the coordinator (and on every worker), with shared_preload_libraries = 'citus'")

// Querier is what the read-only checks need: a *pgx.Conn, a pgx.Tx or a pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// HasExtension reports whether the database has the citus extension.
func HasExtension(ctx context.Context, q Querier) (bool, error) {
	var has bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus')`).Scan(&has)
	return has, err
}

// IsDistributed reports whether tollgate is already distributed on this database's Citus cluster (a
// previous tollgate migrate --citus placed tollgate.customers).
func IsDistributed(ctx context.Context, q Querier) (bool, error) {
	has, err := HasExtension(ctx, q)
	if err != nil || !has {
		return false, err
	}
	var placed bool
	err = q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
	                                       WHERE p.logicalrelid = pg_catalog.to_regclass('tollgate.customers'))`).Scan(&placed)
	return placed, err
}

// Result says what Apply did.
type Result struct {
	Placed    []string // tables placed by this run, as "name (placement)"
	Functions int      // functions of schema tollgate made distributed by this run
}

// Apply places tollgate's tables and functions on the Citus cluster of the database (the coordinator), in
// one transaction. It is idempotent: tables already placed stay, and the rest is done again.
func Apply(ctx context.Context, conn *pgx.Conn, out io.Writer) (Result, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Result{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	res, err := ApplyTx(ctx, tx, out)
	if err != nil {
		return res, err
	}
	return res, tx.Commit(ctx)
}

// ApplyTx is Apply inside the caller's transaction (tollgate migrate runs it in the one that installs the
// code package).
func ApplyTx(ctx context.Context, tx pgx.Tx, out io.Writer) (Result, error) {
	if out == nil {
		out = io.Discard
	}
	var res Result
	if err := checkCluster(ctx, tx); err != nil {
		return res, err
	}
	// Triggers on distributed and reference tables: tollgate's own (the trigger on customers touches only
	// the customer's co-located rows; the configuration's version trigger touches only its node's copy).
	if _, err := tx.Exec(ctx, `SET LOCAL citus.enable_unsafe_triggers = on`); err != nil {
		return res, err
	}

	todo, err := tablesToPlace(ctx, tx)
	if err != nil {
		return res, err
	}
	for _, t := range todo {
		for _, stmt := range t.Prepare {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return res, fmt.Errorf("citus: prepare tollgate.%s: %w", t.Name, err)
			}
		}
	}
	// customers first: it anchors the co-location group of the distributed tables
	slices.SortStableFunc(todo, func(a, b Table) int {
		return rank(a) - rank(b)
	})
	for _, t := range todo {
		var stmt string
		switch t.Placement {
		case Reference:
			stmt = `SELECT pg_catalog.create_reference_table($1)`
		case Distributed:
			if t.Name == "customers" {
				stmt = `SELECT pg_catalog.create_distributed_table($1, 'customer')`
			} else {
				stmt = `SELECT pg_catalog.create_distributed_table($1, 'customer', colocate_with => 'tollgate.customers')`
			}
		default:
			continue
		}
		if _, err := tx.Exec(ctx, stmt, "tollgate."+t.Name); err != nil {
			return res, fmt.Errorf("citus: place tollgate.%s (%s): %w", t.Name, t.Placement, err)
		}
		res.Placed = append(res.Placed, fmt.Sprintf("%s (%s)", t.Name, t.Placement))
	}
	for _, t := range todo {
		for _, stmt := range t.Finish {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return res, fmt.Errorf("citus: finish tollgate.%s: %w", t.Name, err)
			}
		}
	}

	// The functions a cluster runs in another form, then the configuration's version triggers in theirs:
	// statement triggers without TRUNCATE (Citus puts a trigger on the copies of a reference table only then).
	if _, err := tx.Exec(ctx, overridesSQL); err != nil {
		return res, fmt.Errorf("citus: overrides.sql: %w", err)
	}
	for _, table := range configTables {
		for _, stmt := range []string{
			dropBumpTrigger(table),
			fmt.Sprintf(`CREATE TRIGGER bump_config_version AFTER INSERT OR UPDATE OR DELETE ON tollgate.%s
			             FOR EACH STATEMENT EXECUTE FUNCTION tollgate._bump_config_version()`, table),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return res, fmt.Errorf("citus: the version trigger of tollgate.%s: %w", table, err)
			}
		}
	}

	if res.Functions, err = distributeFunctions(ctx, tx); err != nil {
		return res, err
	}
	if err := customPlans(ctx, tx); err != nil {
		return res, err
	}
	// Functions that reached the workers only now were created there with PUBLIC's default EXECUTE.
	if _, err := tx.Exec(ctx, `REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tollgate FROM PUBLIC`); err != nil {
		return res, err
	}

	// The rows of a table placed now were copied to its shards; free the coordinator's local copy.
	for _, t := range todo {
		if t.Placement == Coordinator {
			continue
		}
		if _, err := tx.Exec(ctx, `SELECT pg_catalog.truncate_local_data_after_distributing_table($1)`, "tollgate."+t.Name); err != nil {
			return res, fmt.Errorf("citus: free the local copy of tollgate.%s: %w", t.Name, err)
		}
	}

	if len(res.Placed) > 0 {
		fmt.Fprintf(out, "citus: placed %s\n", strings.Join(res.Placed, ", "))
	}
	fmt.Fprintf(out, "citus: tollgate is distributed (%d tables placed, %d functions distributed now; %s delegated by customer)\n",
		len(Tables), res.Functions, strings.Join(Delegated, ", "))
	return res, nil
}

func rank(t Table) int {
	switch {
	case t.Placement == Reference:
		return 0
	case t.Name == "customers":
		return 1
	case t.Placement == Distributed:
		return 2
	}
	return 3
}

// checkCluster fails unless this is the coordinator of a Citus cluster that knows itself (reference
// tables keep a copy there, and the coordinator's tables join them).
func checkCluster(ctx context.Context, q Querier) error {
	has, err := HasExtension(ctx, q)
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("citus: %w", ErrNoCitus)
	}
	var coordinator, known bool
	var workers int
	err = q.QueryRow(ctx, `SELECT pg_catalog.citus_is_coordinator(),
	                              EXISTS (SELECT FROM pg_catalog.pg_dist_node n WHERE n.groupid = 0),
	                              (SELECT count(*) FROM pg_catalog.pg_dist_node n WHERE n.groupid <> 0 AND n.isactive AND n.noderole = 'primary')`).
		Scan(&coordinator, &known, &workers)
	if err != nil {
		return fmt.Errorf("citus: read the cluster's nodes: %w", err)
	}
	if !known {
		return errors.New("citus: the coordinator is not in the cluster's metadata: run SELECT citus_set_coordinator_host('<its host>', <its port>) on it first")
	}
	if !coordinator {
		return errors.New("citus: this is not the coordinator: run tollgate migrate --citus against the coordinator")
	}
	if workers == 0 {
		return errors.New("citus: the cluster has no active worker: add them with SELECT citus_add_node('<host>', <port>)")
	}
	return nil
}

// tablesToPlace lists the tables of schema tollgate that are not placed yet, in the order of Tables. A table
// that Tables does not name, or one placed otherwise than Tables says, is an error.
func tablesToPlace(ctx context.Context, tx pgx.Tx) ([]Table, error) {
	rows, err := tx.Query(ctx, `
	  SELECT c.relname,
	         CASE WHEN p.logicalrelid IS NULL THEN 'coordinator'
	              WHEN p.partmethod = 'h' THEN 'distributed'
	              WHEN p.partmethod = 'n' AND p.repmodel = 't' THEN 'reference'
	              ELSE 'citus local' END,
	         p.logicalrelid IS NOT NULL
	    FROM pg_catalog.pg_class c
	    LEFT JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = c.oid
	   WHERE c.relnamespace = 'tollgate'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p')
	     AND NOT c.relispartition
	   ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	type current struct {
		placement string
		citus     bool
	}
	have := map[string]current{}
	var unplaced []string
	for rows.Next() {
		var name, placement string
		var citusTable bool
		if err := rows.Scan(&name, &placement, &citusTable); err != nil {
			return nil, err
		}
		if _, ok := TableNamed(name); !ok {
			unplaced = append(unplaced, "tollgate."+name)
		}
		have[name] = current{placement, citusTable}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(unplaced) > 0 {
		return nil, fmt.Errorf("citus: %s not placed for a Citus cluster: add to internal/citus.Tables (distributed by customer, reference or coordinator)",
			strings.Join(unplaced, ", "))
	}
	var todo []Table
	for _, t := range Tables {
		cur, ok := have[t.Name]
		switch {
		case !ok:
			continue // a table of a later version
		case cur.placement == string(t.Placement):
			continue
		case cur.citus:
			return nil, fmt.Errorf("citus: tollgate.%s is a %s table, but internal/citus.Tables wants it %s: move it by hand (undistribute_table) first",
				t.Name, cur.placement, t.Placement)
		}
		todo = append(todo, t)
	}
	return todo, nil
}

// distributeFunctions makes every function of schema tollgate a distributed function (Citus creates it on
// the workers and keeps it in step), delegating Delegated by their customer argument. It returns how many
// it distributed or delegated now.
func distributeFunctions(ctx context.Context, tx pgx.Tx) (int, error) {
	rows, err := tx.Query(ctx, `
	  SELECT p.oid::pg_catalog.regprocedure::text, p.proname,
	         o.objid IS NOT NULL,
	         coalesce(o.distribution_argument_index, -1),
	         coalesce(o.colocationid, 0) = coalesce((SELECT d.colocationid FROM pg_catalog.pg_dist_partition d
	                                                  WHERE d.logicalrelid = 'tollgate.customers'::pg_catalog.regclass), -1),
	         coalesce(o.force_delegation, false),
	         pg_catalog.array_position(p.proargnames, 'customer') - 1
	    FROM pg_catalog.pg_proc p
	    LEFT JOIN pg_catalog.pg_dist_object o
	      ON o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND o.objid = p.oid
	   WHERE p.pronamespace = 'tollgate'::pg_catalog.regnamespace
	   ORDER BY 1`)
	if err != nil {
		return 0, err
	}
	type fn struct {
		sig, name   string
		distributed bool
		argIndex    int
		colocated   bool
		forced      bool
		customerArg *int32
	}
	fns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fn, error) {
		var f fn
		err := r.Scan(&f.sig, &f.name, &f.distributed, &f.argIndex, &f.colocated, &f.forced, &f.customerArg)
		return f, err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range fns {
		if slices.Contains(Delegated, f.name) {
			if f.customerArg == nil {
				return n, fmt.Errorf("citus: tollgate.%s is to be delegated by its customer argument, but has none", f.sig)
			}
			if f.distributed && f.argIndex == int(*f.customerArg) && f.colocated && f.forced == ForceDelegation {
				continue
			}
			if _, err := tx.Exec(ctx, `SELECT pg_catalog.create_distributed_function($1::pg_catalog.regprocedure, 'customer',
			                             colocate_with := 'tollgate.customers', force_delegation := $2)`, f.sig, ForceDelegation); err != nil {
				return n, fmt.Errorf("citus: delegate %s: %w", f.sig, err)
			}
			n++
			continue
		}
		if f.distributed {
			continue
		}
		if _, err := tx.Exec(ctx, `SELECT pg_catalog.create_distributed_function($1::pg_catalog.regprocedure)`, f.sig); err != nil {
			return n, fmt.Errorf("citus: distribute %s: %w", f.sig, err)
		}
		n++
	}
	return n, nil
}

// customPlans gives the PL/pgSQL entry points (SECURITY DEFINER functions and triggers) plan_cache_mode =
// force_custom_plan, for all they call. PL/pgSQL plans a statement with its parameters' values five times,
// then considers a generic plan without them. Citus can send a statement that names the customer to the
// customer's shard only when it sees the value: a generic plan of a join (tollgate's reads of usage with
// customers) goes to every shard, and Citus gives it no cost that would keep PostgreSQL from taking it.
func customPlans(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `
	  SELECT p.oid::pg_catalog.regprocedure::text FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'tollgate'::pg_catalog.regnamespace
	     AND p.prolang = (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'plpgsql')
	     AND (p.prosecdef OR p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype)
	     AND NOT coalesce('plan_cache_mode=force_custom_plan' = ANY (p.proconfig), false)
	   ORDER BY 1`)
	if err != nil {
		return err
	}
	fns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, fn := range fns {
		if _, err := tx.Exec(ctx, "ALTER FUNCTION "+fn+" SET plan_cache_mode = force_custom_plan"); err != nil {
			return fmt.Errorf("citus: custom plans for %s: %w", fn, err)
		}
	}
	return nil
}

// ForceDelegation is the force_delegation flag of the Delegated functions: whether a call inside an explicit
// transaction block (BEGIN ... COMMIT, Django's atomic) is delegated too.
const ForceDelegation = false

// Migrate is tollgate migrate on the coordinator of a Citus cluster: the migrations and the code package
// as schema.MigrateFSWith runs them (the embedded ones when migrationsFS and codeFS are nil), with Apply
// in the transaction that installs the package, or on its own when the package was current. The session
// may create tollgate's triggers on distributed tables (citus.enable_unsafe_triggers).
func Migrate(ctx context.Context, conn *pgx.Conn, migrationsFS, codeFS fs.FS, out io.Writer) (schema.Result, error) {
	if out == nil {
		out = io.Discard
	}
	if migrationsFS == nil {
		migrationsFS = migrations.FS
	}
	if codeFS == nil {
		codeFS = sqlapi.FS
	}
	if err := checkCluster(ctx, conn); err != nil {
		return schema.Result{}, err
	}
	if _, err := conn.Exec(ctx, "SET citus.enable_unsafe_triggers = on"); err != nil {
		return schema.Result{}, err
	}
	res, err := schema.MigrateFSWith(ctx, conn, migrationsFS, codeFS, schema.Latest, out, schema.Hooks{
		AfterCode: func(ctx context.Context, tx pgx.Tx) error {
			_, err := ApplyTx(ctx, tx, out)
			return err
		},
	})
	if err != nil {
		return res, err
	}
	if !res.Code.Installed {
		// the package was current: place what is not placed yet (a first --citus, a table a migration added)
		if _, err := Apply(ctx, conn, out); err != nil {
			return res, err
		}
	}
	return res, nil
}
