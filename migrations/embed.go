// Package migrations embeds tollgate's numbered tern migrations, so the tollgate binary carries its own
// schema. The code package they are followed by is sql/ (package sqlapi).
package migrations

import "embed"

// FS holds the *.sql migrations, laid out as tern's LoadMigrations expects.
//
//go:embed *.sql
var FS embed.FS
