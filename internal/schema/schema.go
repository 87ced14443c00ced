// Package schema applies tollgate's migrations with tern. The CLI (`tollgate migrate`), the test
// harness and the demo all migrate through it, and a database it migrates is the same as one migrated by
// `tern migrate --migrations migrations`: same SQL, same version table (public.schema_version).
package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	"github.com/tollgate/tollgate/migrations"
)

// VersionTable is tern's default version table, so the tern CLI and tollgate agree on the version.
const VersionTable = "public.schema_version"

// Latest as a target means "the highest migration".
const Latest int32 = -1

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
}

// Migrate brings the database to target (Latest for the newest) with the embedded migrations, and
// writes one line per migration and a summary to out (nil: no output).
func Migrate(ctx context.Context, conn *pgx.Conn, target int32, out io.Writer) (Result, error) {
	return MigrateFS(ctx, conn, migrations.FS, target, out)
}

// MigrateFS is Migrate with the migrations of fsys (laid out like the migrations directory).
func MigrateFS(ctx context.Context, conn *pgx.Conn, fsys fs.FS, target int32, out io.Writer) (Result, error) {
	if out == nil {
		out = io.Discard
	}
	var res Result
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return res, fmt.Errorf("prepare version table %s: %w", VersionTable, err)
	}
	if err := m.LoadMigrations(fsys); err != nil {
		return res, fmt.Errorf("load migrations: %w", err)
	}
	latest := int32(len(m.Migrations))
	if target == Latest {
		target = latest
	}
	if target < 0 || target > latest {
		return res, fmt.Errorf("target version %d is outside 0 to %d", target, latest)
	}
	if res.From, err = m.GetCurrentVersion(ctx); err != nil {
		return res, fmt.Errorf("read current version: %w", err)
	}
	res.To = res.From
	if res.From == target {
		fmt.Fprintf(out, "already at version %d, nothing to do\n", res.From)
		return res, nil
	}

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
		return res, translate(migErr, running, fsys)
	}
	fmt.Fprintf(out, "migrated from version %d to %d\n", res.From, res.To)
	return res, nil
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

// MigrationError is a failed migration: which one, the server's error fields, and the failing line.
type MigrationError struct {
	Migration string // file name, e.g. 004_bad.sql
	Direction string // "up" or "down"
	Code      string // SQLSTATE
	Message   string
	Detail    string
	Hint      string
	Where     string // the server's CONTEXT, e.g. the PL/pgSQL line
	// Line is the 1-based line the server pointed at, in the migration file; for a migration whose
	// {{ }} actions expand (install_snapshot), in the expanded SQL of its up or down part. 0 when the
	// server gave no position.
	Line     int
	LineText string
	Err      error // the underlying error (a *pgconn.PgError)
}

func (e *MigrationError) Error() string {
	s := fmt.Sprintf("migration %s failed: SQLSTATE %s: %s", e.Migration, e.Code, e.Message)
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d: %s)", e.Line, strings.TrimSpace(e.LineText))
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
	fmt.Fprintf(&b, "migration %s%s failed\n", e.Migration, direction)
	fmt.Fprintf(&b, "  SQLSTATE %s: %s\n", e.Code, e.Message)
	for _, f := range []struct{ label, text string }{{"DETAIL", e.Detail}, {"HINT", e.Hint}, {"CONTEXT", e.Where}} {
		if f.text != "" {
			fmt.Fprintf(&b, "  %s: %s\n", f.label, strings.ReplaceAll(f.text, "\n", "\n    "))
		}
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "  line %d: %s\n", e.Line, strings.TrimSpace(e.LineText))
	}
	return b.String()
}

func translate(err error, running *Step, fsys fs.FS) error {
	var mpe migrate.MigrationPgError
	if !errors.As(err, &mpe) {
		if running != nil {
			return fmt.Errorf("migration %s (%s): %w", running.Name, running.Direction, err)
		}
		return err
	}
	pe := mpe.PgError
	me := &MigrationError{
		Migration: mpe.MigrationName,
		Code:      pe.Code,
		Message:   pe.Message,
		Detail:    pe.Detail,
		Hint:      pe.Hint,
		Where:     pe.Where,
		Err:       pe,
	}
	if running != nil {
		me.Direction = running.Direction
	}
	me.Line, me.LineText = errorLine(mpe.Sql, pe)
	if me.Line > 0 {
		me.Line += fileLineOffset(fsys, me.Migration, me.Direction, mpe.Sql)
	}
	return me
}

// separator splits a tern migration into its up and down parts.
const separator = "---- create above / drop below ----"

// fileLineOffset is the number of file lines before the first line of the SQL tern ran (tern trims
// each part), or 0 when that SQL is not a verbatim part of the file (template expansion).
func fileLineOffset(fsys fs.FS, name, direction, sql string) int {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0
	}
	file := string(b)
	before := ""
	part := file
	if i := strings.Index(file, separator); i >= 0 {
		if direction == "down" {
			before, part = file[:i+len(separator)], file[i+len(separator):]
		} else {
			part = file[:i]
		}
	}
	if strings.TrimSpace(part) != sql {
		return 0
	}
	leading := part[:len(part)-len(strings.TrimLeftFunc(part, unicode.IsSpace))]
	return strings.Count(before, "\n") + strings.Count(leading, "\n")
}

// errorLine finds the line the server complained about. Position counts characters in the statement
// sent; errors raised while running a statement inside a function or DO block instead carry
// InternalQuery and InternalPosition, which are located in the statement when the query text
// appears there verbatim, once. (PL/pgSQL rewrites some statements, e.g. PERFORM and INTO; their
// line is then only in Where, the CONTEXT.)
func errorLine(sql string, pe *pgconn.PgError) (int, string) {
	if pe.Position > 0 {
		return lineAt(sql, int(pe.Position))
	}
	if pe.InternalPosition > 0 && pe.InternalQuery != "" {
		if strings.Count(sql, pe.InternalQuery) == 1 {
			i := strings.Index(sql, pe.InternalQuery)
			return lineAt(sql, len([]rune(sql[:i]))+int(pe.InternalPosition))
		}
	}
	return 0, ""
}

// lineAt returns the 1-based line number and text holding the pos-th character (1-based) of s.
func lineAt(s string, pos int) (int, string) {
	runes := []rune(s)
	if pos < 1 || pos > len(runes)+1 {
		return 0, ""
	}
	before := string(runes[:pos-1])
	line := strings.Count(before, "\n") + 1
	start := strings.LastIndexByte(before, '\n') + 1
	rest := s[start:]
	if end := strings.IndexByte(rest, '\n'); end >= 0 {
		rest = rest[:end]
	}
	return line, strings.TrimRight(rest, "\r")
}
