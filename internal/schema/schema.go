// Package schema installs tollgate's schema: the numbered tern migrations (migrations/: tables, types,
// roles), then the code package (sql/: functions, triggers, grants), reinstalled whole whenever it
// changed. The CLI (`tollgate migrate`), the test harness and the demo all migrate through it, and a
// database it migrates is the same as one migrated by `tern migrate --migrations migrations` followed
// by `tern code install sql`: same SQL, same version table (public.schema_version), same record of the
// installed package (tollgate.code_package).
package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	"github.com/tollgate/tollgate/migrations"
	sqlapi "github.com/tollgate/tollgate/sql"
)

// VersionTable is tern's default version table, so the tern CLI and tollgate agree on the version.
const VersionTable = "public.schema_version"

// CodeTable records the sha256 of the code package installed last (migrations/006_code_package.sql).
const CodeTable = "tollgate.code_package"

// Latest as a target means "the highest migration".
const Latest int32 = -1

// ternLock is the session advisory lock tern takes around migrations and `tern code install`
// (migrate.lockNum): holding it for the whole of Migrate serializes tollgate migrate with other
// tollgate migrates and with the tern CLI. Session advisory locks stack, so tern taking it again
// inside is fine.
const ternLock = int64(9628173550095224)

// Step is one migration run in one direction.
type Step struct {
	Sequence  int32
	Name      string // file name, e.g. 002_schema.sql
	Direction string // "up" or "down"
}

// Result says what Migrate did.
type Result struct {
	From    int32  // version before
	To      int32  // version after (on failure: the version the database was left at)
	Applied []Step // migrations that completed, in order
	Code    Code   // what happened to the code package
}

// Code says what Migrate did with the code package.
type Code struct {
	SHA256    string   // of the package as rendered (hex): the one Migrate carries
	Installed bool     // it was installed: the database recorded another hash, or none
	Dropped   []string // functions the installed package no longer defines, dropped by the install
	Removed   bool     // going below the latest version dropped the package's functions
}

// Migrate brings the database to target (Latest for the newest) with the embedded migrations and,
// at the latest version, installs the embedded code package when it differs from the installed one.
// It writes one line per step and a summary to out (nil: no output).
func Migrate(ctx context.Context, conn *pgx.Conn, target int32, out io.Writer) (Result, error) {
	return MigrateFS(ctx, conn, migrations.FS, sqlapi.FS, target, out)
}

// MigrateFS is Migrate with the migrations of migrationsFS (laid out like the migrations directory)
// and the code package of codeFS (laid out like sql/).
//
// Going up, the versioned migrations run first, one transaction each. Then, when the target is the
// latest version, the code package is rendered as `tern code install` renders it and, if its sha256
// differs from the one in tollgate.code_package, run as one string in one transaction, as tern runs
// it: its prune.sql drops the tollgate functions it no longer defines, its last file records the hash.
// Going down (target below the current version), the code package's functions are dropped first,
// with what depends on them: below the latest version there is no code package.
func MigrateFS(ctx context.Context, conn *pgx.Conn, migrationsFS, codeFS fs.FS, target int32, out io.Writer) (res Result, err error) {
	return MigrateFSWith(ctx, conn, migrationsFS, codeFS, target, out, Hooks{})
}

// Hooks extend Migrate for a kind of installation (internal/citus: a Citus cluster).
type Hooks struct {
	// AfterCode, when set, runs inside the transaction that installs the code package, after it: what it
	// changes commits with the package or not at all, so no session sees the package without it.
	AfterCode func(ctx context.Context, tx pgx.Tx) error
}

// MigrateFSWith is MigrateFS with hooks.
func MigrateFSWith(ctx context.Context, conn *pgx.Conn, migrationsFS, codeFS fs.FS, target int32, out io.Writer, hooks Hooks) (res Result, err error) {
	if out == nil {
		out = io.Discard
	}
	// Render the package first: a broken template fails before anything changes.
	code, err := RenderCode(codeFS)
	if err != nil {
		return res, fmt.Errorf("code package: %w", err)
	}
	res.Code.SHA256 = code.SHA256

	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return res, fmt.Errorf("prepare version table %s: %w", VersionTable, err)
	}
	if err := m.LoadMigrations(migrationsFS); err != nil {
		return res, fmt.Errorf("load migrations: %w", err)
	}
	latest := int32(len(m.Migrations))
	if target == Latest {
		target = latest
	}
	if target < 0 || target > latest {
		return res, fmt.Errorf("target version %d is outside 0 to %d", target, latest)
	}

	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock($1)", ternLock); err != nil {
		return res, fmt.Errorf("wait for other migrations: %w", err)
	}
	defer func() {
		// Without ctx's cancellation: a cancelled Migrate must still let go of the lock.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_catalog.pg_advisory_unlock($1)", ternLock); uerr != nil && err == nil && !conn.IsClosed() {
			err = fmt.Errorf("release the migration lock: %w", uerr)
		}
	}()

	if res.From, err = m.GetCurrentVersion(ctx); err != nil {
		return res, fmt.Errorf("read current version: %w", err)
	}
	res.To = res.From
	if res.From > latest {
		return res, fmt.Errorf("the database is at version %d, newer than this tollgate's migrations (%d): upgrade tollgate", res.From, latest)
	}

	if target < res.From {
		n, err := removeCode(ctx, conn)
		if err != nil {
			return res, fmt.Errorf("remove the code package before going down: %w", err)
		}
		res.Code.Removed = n > 0
		if n > 0 {
			fmt.Fprintf(out, "removed the code package: %d functions (below version %d there is none)\n", n, latest)
		}
	}

	if target != res.From {
		if err := runMigrations(ctx, m, target, migrationsFS, &res, out); err != nil {
			return res, err
		}
	}

	if target == latest {
		var hasTable bool
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", CodeTable).Scan(&hasTable); err != nil {
			return res, fmt.Errorf("read the installed code package: %w", err)
		}
		if !hasTable {
			// Only a database migrated by a development build before 006_code_package.sql existed.
			return res, fmt.Errorf("the database is at version %d but has no %s, which migration 6 creates: it was "+
				"migrated by a development build of tollgate whose migrations differed; migrate a new database "+
				"(for tollgate dev: remove .tollgate/dev)", res.To, CodeTable)
		}
		recorded, err := InstalledCodeSHA256(ctx, conn)
		if err != nil {
			return res, err
		}
		if recorded != code.SHA256 {
			fmt.Fprintf(out, "installing code package sql/ (sha256 %.12s)\n", code.SHA256)
			dropped, err := installCode(ctx, conn, code, codeFS, hooks.AfterCode)
			if err != nil {
				return res, err
			}
			res.Code.Installed, res.Code.Dropped = true, dropped
			for _, fn := range dropped {
				fmt.Fprintf(out, "dropped %s: the code package no longer defines it\n", fn)
			}
		}
	}

	switch {
	case res.From != res.To:
		fmt.Fprintf(out, "migrated from version %d to %d\n", res.From, res.To)
	case res.Code.Installed:
		fmt.Fprintf(out, "already at version %d\n", res.To)
	case target == latest:
		fmt.Fprintf(out, "already at version %d with code package sql/ (sha256 %.12s), nothing to do\n", res.To, code.SHA256)
	default:
		fmt.Fprintf(out, "already at version %d, nothing to do\n", res.To)
	}
	if res.Code.Installed {
		fmt.Fprintf(out, "code package sql/ installed (sha256 %.12s)\n", code.SHA256)
	}
	return res, nil
}

// runMigrations runs the versioned migrations from the current version to target.
func runMigrations(ctx context.Context, m *migrate.Migrator, target int32, fsys fs.FS, res *Result, out io.Writer) error {
	var running *Step
	m.OnStart = func(seq int32, name, direction, _ string) {
		if running != nil {
			res.Applied = append(res.Applied, *running)
		}
		running = &Step{Sequence: seq, Name: name, Direction: direction}
		fmt.Fprintf(out, "migrating %s %s\n", name, direction)
	}
	migErr := m.MigrateTo(ctx, target)
	if migErr == nil && running != nil {
		res.Applied = append(res.Applied, *running)
	}
	// tern has rolled the failed migration's transaction back by now; the version is trustworthy.
	if v, err := m.GetCurrentVersion(ctx); err == nil {
		res.To = v
	}
	if migErr != nil {
		return translate(migErr, running, fsys)
	}
	return nil
}

// RenderedCode is a code package rendered as `tern code install` renders it.
type RenderedCode struct {
	SQL    string // install.sql with every {{ template "x.sql" . }} expanded
	SHA256 string // of SQL, hex
}

// RenderCode renders the code package of fsys (install.sql and the *.sql files it includes) as
// `tern code install` does, with no template data.
func RenderCode(fsys fs.FS) (RenderedCode, error) {
	pkg, err := migrate.LoadCodePackage(fsys)
	if err != nil {
		return RenderedCode{}, err
	}
	sql, err := pkg.Eval(map[string]any{})
	if err != nil {
		return RenderedCode{}, err
	}
	sum := sha256.Sum256([]byte(sql))
	return RenderedCode{SQL: sql, SHA256: hex.EncodeToString(sum[:])}, nil
}

// CodeSHA256 is the sha256 (hex) of the embedded code package as rendered: what Migrate installs and
// what tollgate.code_package holds once it has. It is computed once.
func CodeSHA256() (string, error) { return embeddedCodeSHA256() }

var embeddedCodeSHA256 = sync.OnceValues(func() (string, error) {
	code, err := RenderCode(sqlapi.FS)
	return code.SHA256, err
})

// InstalledCodeSHA256 reads the sha256 of the code package installed last: "" when none is (the
// database is below the version that keeps the record, or the package was never installed).
func InstalledCodeSHA256(ctx context.Context, q Querier) (string, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", CodeTable).Scan(&exists); err != nil {
		return "", fmt.Errorf("read the installed code package: %w", err)
	}
	if !exists {
		return "", nil
	}
	var sha string
	err := q.QueryRow(ctx, "SELECT sha256 FROM "+CodeTable).Scan(&sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the installed code package: %w", err)
	}
	return sha, nil
}

// functionsSQL lists the functions of schema tollgate, schema-qualified with their argument types.
const functionsSQL = `
SELECT pg_catalog.format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid))
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'tollgate'
 ORDER BY 1`

func tollgateFunctions(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, functionsSQL)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// installCode runs the rendered package in one transaction, as `tern code install` does (one
// string, simple protocol, inside BEGIN ... COMMIT), and returns the functions its last file
// dropped.
func installCode(ctx context.Context, conn *pgx.Conn, code RenderedCode, codeFS fs.FS, after func(context.Context, pgx.Tx) error) (dropped []string, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	before, err := tollgateFunctions(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	// No arguments: pgx sends the text as one simple-protocol Query, as tern's LockExecTx does, so
	// the package's current_query() is the whole text and its hash is code.SHA256.
	if _, err := tx.Exec(ctx, code.SQL); err != nil {
		return nil, codeError(err, code.SQL, codeFS)
	}
	var recorded string
	if err := tx.QueryRow(ctx, "SELECT sha256 FROM "+CodeTable).Scan(&recorded); err != nil {
		return nil, fmt.Errorf("code package sql/ recorded no install in %s (its last file must be record_install.sql): %w", CodeTable, err)
	}
	if recorded != code.SHA256 {
		return nil, fmt.Errorf("code package sql/ recorded sha256 %s, but its text has sha256 %s (its last file must be record_install.sql)", recorded, code.SHA256)
	}
	if after != nil {
		if err := after(ctx, tx); err != nil {
			return nil, err
		}
	}
	kept, err := tollgateFunctions(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	// As tern does after each migration: settings the package changed do not outlive it.
	if _, err := conn.Exec(ctx, "RESET ALL"); err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, fn := range kept {
		keep[fn] = true
	}
	for _, fn := range before {
		if !keep[fn] {
			dropped = append(dropped, fn)
		}
	}
	return dropped, nil
}

// removeCode drops every function of schema tollgate, with what depends on them (the package's
// triggers, row gates on app tables), and forgets the installed package: below the latest version
// the schema has no code package. It returns how many functions it dropped.
func removeCode(ctx context.Context, conn *pgx.Conn) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	fns, err := tollgateFunctions(ctx, tx)
	if err != nil {
		return 0, err
	}
	for _, fn := range fns {
		// A CASCADE of an earlier one may have taken it already.
		if _, err := tx.Exec(ctx, "DROP ROUTINE IF EXISTS "+fn+" CASCADE"); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(ctx, `DO $$ BEGIN
	  IF pg_catalog.to_regclass('`+CodeTable+`') IS NOT NULL THEN DELETE FROM `+CodeTable+`; END IF;
	END $$`); err != nil {
		return 0, err
	}
	return len(fns), tx.Commit(ctx)
}

// LatestVersion is the number of the newest embedded migration.
func LatestVersion() (int32, error) { return LatestVersionFS(migrations.FS) }

// LatestVersionFS is the number of the newest migration in fsys.
func LatestVersionFS(fsys fs.FS) (int32, error) {
	paths, err := migrate.FindMigrations(fsys)
	if err != nil {
		return 0, err
	}
	return int32(len(paths)), nil
}

// Querier is what CurrentVersion needs: a *pgx.Conn, *pgxpool.Pool or pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CurrentVersion reads the database's schema version without changing anything: 0 when it has never
// been migrated.
func CurrentVersion(ctx context.Context, q Querier) (int32, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int32
	if err := q.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// CodePackage is MigrationError.Migration for a failure of the code package.
const CodePackage = "code package sql/"

// MigrationError is a failed migration or code package install: which one, the server's error fields,
// and the failing line.
type MigrationError struct {
	Migration string // file name, e.g. 004_bad.sql; CodePackage for the code package
	Direction string // "up" or "down"; "install" for the code package
	Code      string // SQLSTATE
	Message   string
	Detail    string
	Hint      string
	Where     string // the server's CONTEXT, e.g. the PL/pgSQL line
	// File and Line locate what the server pointed at (Line 0: it gave no position). For a migration,
	// File is the migration (relative to the migrations directory), and Line counts its lines. For the
	// code package, File is the package file holding the SQL verbatim (sql/consume.sql), or "" when no
	// single file does: Line then counts lines of the rendered package.
	File     string
	Line     int
	LineText string
	Err      error // the underlying error (a *pgconn.PgError)
}

func (e *MigrationError) what() string {
	if e.Direction == "install" {
		return e.Migration + " failed to install"
	}
	return "migration " + e.Migration + " failed"
}

func (e *MigrationError) Error() string {
	s := fmt.Sprintf("%s: SQLSTATE %s: %s", e.what(), e.Code, e.Message)
	if e.Line > 0 {
		s += fmt.Sprintf(" (%s: %s)", e.location(), strings.TrimSpace(e.LineText))
	}
	return s
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Report is the error as a few lines for people: the migration, then the server's fields and the
// failing line, indented:
//
//	migration 004_bad.sql failed
//	  SQLSTATE 42601: syntax error at or near "SELEC"
//	  DETAIL: ...
//	  HINT: ...
//	  CONTEXT: ...
//	  line 3: SELEC 1;
func (e *MigrationError) Report() string {
	var b strings.Builder
	direction := ""
	if e.Direction == "down" {
		direction = " (down)"
	}
	fmt.Fprintf(&b, "%s%s\n", e.what(), direction)
	fmt.Fprintf(&b, "  SQLSTATE %s: %s\n", e.Code, e.Message)
	for _, f := range []struct{ label, text string }{{"DETAIL", e.Detail}, {"HINT", e.Hint}, {"CONTEXT", e.Where}} {
		if f.text != "" {
			fmt.Fprintf(&b, "  %s: %s\n", f.label, strings.ReplaceAll(f.text, "\n", "\n    "))
		}
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "  %s: %s\n", e.location(), strings.TrimSpace(e.LineText))
	}
	return b.String()
}

// location is "line 3" of the migration, "sql/consume.sql line 12" in the code package, or "rendered
// package line 40".
func (e *MigrationError) location() string {
	switch {
	case e.Direction == "install" && e.File == "":
		return fmt.Sprintf("rendered package line %d", e.Line)
	case e.Direction == "install":
		return fmt.Sprintf("%s line %d", e.File, e.Line)
	}
	return fmt.Sprintf("line %d", e.Line)
}

func translate(err error, running *Step, fsys fs.FS) error {
	var mpe migrate.MigrationPgError
	if !errors.As(err, &mpe) {
		if running != nil {
			return fmt.Errorf("migration %s (%s): %w", running.Name, running.Direction, err)
		}
		return err
	}
	me := newMigrationError(mpe.PgError)
	me.Migration = mpe.MigrationName
	if running != nil {
		me.Direction = running.Direction
	}
	if off, ok := errorOffset(mpe.Sql, mpe.PgError); ok {
		me.File, me.Line, me.LineText = locate(fsys, me.Migration, me.Direction, mpe.Sql, off)
	}
	return me
}

func newMigrationError(pe *pgconn.PgError) *MigrationError {
	return &MigrationError{
		Code:    pe.Code,
		Message: pe.Message,
		Detail:  pe.Detail,
		Hint:    pe.Hint,
		Where:   pe.Where,
		Err:     pe,
	}
}

// codeError names the package file and line of a failed install: the file whose text holds the
// server's position verbatim, once (a {{ template }} include inserts a file as it is).
func codeError(err error, sql string, codeFS fs.FS) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", CodePackage, err)
	}
	me := newMigrationError(pe)
	me.Migration, me.Direction = CodePackage, "install"
	off, ok := errorOffset(sql, pe)
	if !ok {
		return me
	}
	me.Line, me.LineText = lineAt(sql, off)
	entries, _ := fs.ReadDir(codeFS, ".")
	for _, e := range entries {
		if e.IsDir() || e.Name() == "install.sql" || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(codeFS, e.Name())
		content := string(b)
		if err != nil || strings.TrimSpace(content) == "" || strings.Count(sql, content) != 1 {
			continue
		}
		if start := strings.Index(sql, content); off >= start && off < start+len(content) {
			me.File = "sql/" + e.Name()
			me.Line, me.LineText = lineAt(content, off-start)
			break
		}
	}
	return me
}

// separator splits a tern migration into its up and down parts.
const separator = "---- create above / drop below ----"

// errorOffset finds the byte offset in sql of the character the server complained about. Position
// counts characters (1-based) in the statement sent; errors raised while running a statement inside
// a function or DO block instead carry InternalQuery and InternalPosition, which are located in the
// statement when the query text appears there verbatim, once. (PL/pgSQL rewrites some statements,
// e.g. PERFORM and INTO; their line is then only in Where, the CONTEXT.)
func errorOffset(sql string, pe *pgconn.PgError) (int, bool) {
	if pe.Position > 0 {
		return runeOffset(sql, 0, int(pe.Position))
	}
	if pe.InternalPosition > 0 && pe.InternalQuery != "" && strings.Count(sql, pe.InternalQuery) == 1 {
		return runeOffset(sql, strings.Index(sql, pe.InternalQuery), int(pe.InternalPosition))
	}
	return 0, false
}

// runeOffset is the byte offset of the pos-th character (1-based) of s[from:].
func runeOffset(s string, from, pos int) (int, bool) {
	n := 0
	for i := range s[from:] {
		n++
		if n == pos {
			return from + i, true
		}
	}
	if n+1 == pos { // just past the end: "syntax error at end of input"
		return len(s), true
	}
	return 0, false
}

// locate names the file and line holding byte off of the SQL tern ran: the migration file itself
// when that SQL is a verbatim part of it (tern trims each part), else the migration with the line
// counted in the SQL as tern expanded it.
func locate(fsys fs.FS, migration, direction, sql string, off int) (file string, line int, text string) {
	line, text = lineAt(sql, off)
	if b, err := fs.ReadFile(fsys, migration); err == nil {
		whole := string(b)
		before, part := "", whole
		if i := strings.Index(whole, separator); i >= 0 {
			if direction == "down" {
				before, part = whole[:i+len(separator)], whole[i+len(separator):]
			} else {
				part = whole[:i]
			}
		}
		if strings.TrimSpace(part) == sql {
			leading := part[:len(part)-len(strings.TrimLeftFunc(part, unicode.IsSpace))]
			return migration, line + strings.Count(before, "\n") + strings.Count(leading, "\n"), text
		}
	}
	return migration, line, text
}

// lineAt returns the 1-based line number and the text of the line holding byte off of s.
func lineAt(s string, off int) (int, string) {
	before := s[:off]
	start := strings.LastIndexByte(before, '\n') + 1
	rest := s[start:]
	if end := strings.IndexByte(rest, '\n'); end >= 0 {
		rest = rest[:end]
	}
	return strings.Count(before, "\n") + 1, strings.TrimRight(rest, "\r")
}
