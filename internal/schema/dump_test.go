package schema_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/schema"
	"github.com/tollgate/tollgate/tests/pgtest"
)

func schemaDump(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	dump, err := schema.SchemaDump(t.Context(), pgtest.Server(t).Bin("pg_dump"), db.URL)
	require.NoError(t, err)
	return dump
}

// TestSchemaDumpCurrent keeps schema/tollgate.sql equal to the schema a fresh migration gives, so that
// a reviewer sees the net effect of every change to migrations/ and sql/ in it.
func TestSchemaDumpCurrent(t *testing.T) {
	t.Parallel()
	got := schemaDump(t, pgtest.NewDB(t))
	path := filepath.Join("..", "..", schema.SchemaDumpFile)
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	if got == string(want) {
		return
	}
	t.Fatalf("%s is stale: run `make schema` and commit it. What a fresh database has that the file does not (+):\n%s",
		schema.SchemaDumpFile, diff(t, path, got))
}

// diff is `diff -u file` against text, or the first differing line when diff is not installed.
func diff(t *testing.T, file, text string) string {
	t.Helper()
	fresh := filepath.Join(t.TempDir(), "fresh.sql")
	require.NoError(t, os.WriteFile(fresh, []byte(text), 0o644))
	if out, _ := exec.Command("diff", "-u", "--label", file, "--label", "fresh database", file, fresh).Output(); len(out) > 0 {
		return string(out)
	}
	old, err := os.ReadFile(file)
	require.NoError(t, err)
	want, got := strings.Split(string(old), "\n"), strings.Split(text, "\n")
	for i := 0; i < len(want) && i < len(got); i++ {
		if want[i] != got[i] {
			return fmt.Sprintf("line %d:\n- %s\n+ %s\n", i+1, want[i], got[i])
		}
	}
	return fmt.Sprintf("the file has %d lines, a fresh database's dump %d\n", len(want), len(got))
}

// The dump does not depend on the database it was taken from: a clone of pgtest's template and a
// database migrated on its own (other OIDs, another name, later) dump the same.
func TestSchemaDumpIsStable(t *testing.T) {
	t.Parallel()
	b := migrated(t)
	clone := pgtest.NewDB(t)
	require.Equal(t, schemaDump(t, clone), schemaDump(t, b.db))
	require.Contains(t, schemaDump(t, b.db), "\nCREATE FUNCTION tollgate.consume(")
}

func TestNormalizeDump(t *testing.T) {
	t.Parallel()
	raw := "--\n-- PostgreSQL database dump\n--\n\n" +
		`\restrict AbC123` + "\n\n" +
		"-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)\n" +
		"-- Dumped by pg_dump version 17.6\n" +
		"-- Started on 2025-01-02 03:04:05 UTC\n\n" +
		"SET statement_timeout = 0;\nSET transaction_timeout = 0;\n" +
		"SELECT pg_catalog.set_config('search_path', '', false);\n\n" +
		"--\n-- TOC entry 215 (class 1259 OID 16386)\n" +
		"-- Name: t; Type: TABLE; Schema: tollgate; Owner: -\n--\n\n" +
		"SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n" +
		"CREATE TABLE tollgate.t (\n    x integer\n);\n\n\n\n" +
		"-- Completed on 2025-01-02 03:04:06 UTC\n\n" +
		"--\n-- PostgreSQL database dump complete\n--\n\n" +
		`\unrestrict AbC123` + "\n\n"
	want := "--\n-- Name: t; Type: TABLE; Schema: tollgate; Owner: -\n--\n\n" +
		"CREATE TABLE tollgate.t (\n    x integer\n);\n"
	require.Equal(t, want, schema.NormalizeDump(raw))
	require.Equal(t, want, schema.NormalizeDump(strings.ReplaceAll(raw, "\n", "\r\n")))
}
