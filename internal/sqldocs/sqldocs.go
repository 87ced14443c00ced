// Package sqldocs renders docs/sql-api.md from the database catalog: the
// COMMENT ON FUNCTION / TYPE of each object is the single source of the SQL
// API reference, so the docs cannot drift from the code.
package sqldocs

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Object is one documented function or type.
type Object struct {
	Signature string
	Returns   string
	Comment   string
	Audience  string // app, admin, sidecar, owner, type
}

const query = `
SELECT p.oid::regprocedure::text,
       p.proname || '(' || pg_get_function_arguments(p.oid) || ')',
       pg_get_function_result(p.oid),
       coalesce(obj_description(p.oid, 'pg_proc'), ''),
       CASE WHEN has_function_privilege('tollgate_app', p.oid, 'EXECUTE') THEN 'app'
            WHEN has_function_privilege('tollgate_admin', p.oid, 'EXECUTE') THEN 'admin'
            WHEN has_function_privilege('tollgate_sidecar', p.oid, 'EXECUTE') THEN 'sidecar'
            ELSE 'owner' END
  FROM pg_proc p
 WHERE p.pronamespace = 'tollgate'::regnamespace
   AND p.proname !~ '^_'
UNION ALL
SELECT t.oid::regtype::text, t.oid::regtype::text,
       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
       coalesce(obj_description(t.oid, 'pg_type'), ''),
       'type'
  FROM pg_type t
 WHERE t.typnamespace = 'tollgate'::regnamespace AND t.typtype = 'c'
   AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'
 ORDER BY 5, 2`

// Load reads the documented objects of schema tollgate.
func Load(ctx context.Context, conn *pgx.Conn) ([]Object, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	var objs []Object
	var key string
	var o Object
	_, err = pgx.ForEachRow(rows, []any{&key, &o.Signature, &o.Returns, &o.Comment, &o.Audience}, func() error {
		objs = append(objs, o)
		return nil
	})
	return objs, err
}

var sections = []struct{ audience, title, intro string }{
	{"app", "Called by the app (role tollgate_app)",
		"Grant `tollgate_app` to the database user of your Django app. These are the only objects it can reach."},
	{"admin", "Called by support tools (role tollgate_admin)",
		"Grant `tollgate_admin` to a support or admin database user: it changes what a customer gets beyond the plan, which the app's role may not."},
	{"sidecar", "Called by the sidecar (role tollgate_sidecar)",
		"The sidecar's login role is a member of `tollgate_sidecar`."},
	{"owner", "Configuration (the owner: the role that runs the migrations)",
		"`tollgate apply` calls these from `tollgate.yaml`; they can also be called by hand."},
	{"type", "Types", ""},
}

// Render writes the markdown reference.
func Render(objs []Object) string {
	var b strings.Builder
	b.WriteString("# tollgate SQL API\n\n")
	b.WriteString("<!-- Generated from the catalog's COMMENT ON FUNCTION / TYPE by `make docs`; do not edit. -->\n\n")
	b.WriteString("Every function lives in schema `tollgate`. Errors use SQLSTATE class `TG`: `TG402` quota exceeded, ")
	b.WriteString("`TG404` unknown feature or plan, `TG422` invalid argument.\n")
	for _, s := range sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		if s.intro != "" {
			fmt.Fprintf(&b, "%s\n", s.intro)
		}
		for _, o := range objs {
			if o.Audience != s.audience {
				continue
			}
			if o.Audience == "type" {
				fmt.Fprintf(&b, "\n### `%s`\n\n`(%s)`\n\n%s\n", o.Signature, o.Returns, o.Comment)
				continue
			}
			fmt.Fprintf(&b, "\n### `tollgate.%s`\n\nReturns `%s`.\n\n%s\n", o.Signature, o.Returns, o.Comment)
		}
	}
	return b.String()
}
