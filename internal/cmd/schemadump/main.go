// Command schemadump migrates a throwaway database (internal/pgserver) with tollgate migrate's code and
// writes what the tests compare against:
//
//	go run ./internal/cmd/schemadump                    # schema/tollgate.sql (make schema)
//	go run ./internal/cmd/schemadump -release 0.1.0     # tests/upgrade/testdata/v0.1.0.sql (make release-fixture VERSION=0.1.0)
//
// The first is the normalized pg_dump --schema-only of schema tollgate (TestSchemaDumpCurrent). The
// second is a release fixture: a whole-database dump, data included (the schema version, the
// installed code package), that tests/upgrade restores and migrates to head. Run it from the
// repository root, on the commit that is tagged as the release.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/pgserver"
	"github.com/tollgate/tollgate/internal/schema"
)

// FixtureDir holds the release fixtures, relative to the repository root.
const FixtureDir = "tests/upgrade/testdata"

var releaseVersion = regexp.MustCompile(`^v?(\d+\.\d+\.\d+)$`)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("schemadump", flag.ContinueOnError)
	flags.SetOutput(stderr)
	release := flags.String("release", "", "write the release fixture of this version (e.g. 0.1.0) instead of the schema dump")
	out := flags.String("out", "", "the file to write (default: "+schema.SchemaDumpFile+", or "+FixtureDir+"/v<VERSION>.sql)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "schemadump: unexpected argument %q\n", flags.Arg(0))
		return 2
	}
	path := *out
	if *release != "" {
		m := releaseVersion.FindStringSubmatch(*release)
		if m == nil {
			fmt.Fprintf(stderr, "schemadump: -release wants a version like 0.1.0, not %q\n", *release)
			return 2
		}
		if path == "" {
			path = filepath.Join(FixtureDir, "v"+m[1]+".sql")
		}
	} else if path == "" {
		path = schema.SchemaDumpFile
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	text, err := dump(ctx, *release != "")
	if *release != "" {
		v := releaseVersion.FindStringSubmatch(*release)[1]
		text = fmt.Sprintf(`-- The schema of tollgate release %s, for the upgrade test (tests/upgrade): written by
-- make release-fixture VERSION=%s on the tagged commit, a pg_dump --no-owner of a database freshly
-- migrated by that release (schema and data: its public.schema_version, its tollgate.code_package).
-- Never edit it: the test restores it and migrates it to head.
`, v, v) + text
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, []byte(text), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "schemadump: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d lines)\n", path, strings.Count(text, "\n"))
	return 0
}

// dump migrates a fresh database of a throwaway cluster and dumps it.
func dump(ctx context.Context, fixture bool) (string, error) {
	srv, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return "", err
	}
	defer srv.Stop()
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE tollgate TEMPLATE template0"); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, srv.URL("tollgate"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := schema.Migrate(ctx, conn, schema.Latest, nil); err != nil {
		return "", err
	}
	if fixture {
		return schema.FixtureDump(ctx, srv.Bin("pg_dump"), srv.URL("tollgate"))
	}
	return schema.SchemaDump(ctx, srv.Bin("pg_dump"), srv.URL("tollgate"))
}
