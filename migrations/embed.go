// Package migrations embeds tollgate's numbered tern migrations and the code-package snapshots they
// install, so the tollgate binary carries its own schema.
package migrations

import "embed"

// FS holds the *.sql migrations and snapshots/<NNN>/, laid out as tern's LoadMigrations expects.
//
//go:embed *.sql all:snapshots
var FS embed.FS
