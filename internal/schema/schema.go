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
	"path"
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
	// File and Line locate what the server pointed at (Line 0: it gave no position). File is relative
	// to the migrations directory: the migration itself, or for a migration that installs a snapshot,
	// the snapshot file (snapshots/006/consume.sql). When neither holds the SQL verbatim, File is the
	// migration and Line counts lines of its expanded SQL.
	File     string
	Line     int
	LineText string
	Err      error // the underlying error (a *pgconn.PgError)
}

func (e *MigrationError) Error() string {
	s := fmt.Sprintf("migration %s failed: SQLSTATE %s: %s", e.Migration, e.Code, e.Message)
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
	fmt.Fprintf(&b, "migration %s%s failed\n", e.Migration, direction)
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

// location is "line 3" in the migration itself, or "snapshots/006/consume.sql line 12".
func (e *MigrationError) location() string {
	if e.File != "" && e.File != e.Migration {
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
	if off, ok := errorOffset(mpe.Sql, pe); ok {
		me.File, me.Line, me.LineText = locate(fsys, me.Migration, me.Direction, mpe.Sql, off)
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
// when that SQL is a verbatim part of it (tern trims each part), else the snapshot file whose text
// contains it (install_snapshot expands to the snapshot's files), else the migration with the line
// counted in the expanded SQL.
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
	found := ""
	fs.WalkDir(fsys, "snapshots", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" || path.Ext(p) != ".sql" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		content := string(b)
		if err != nil || strings.TrimSpace(content) == "" || strings.Count(sql, content) != 1 {
			return nil
		}
		if start := strings.Index(sql, content); off >= start && off < start+len(content) {
			found = p
			line, text = lineAt(content, off-start)
		}
		return nil
	})
	if found != "" {
		return found, line, text
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
