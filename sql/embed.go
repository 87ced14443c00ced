// Package sqlapi embeds the SQL API code package (install.sql and the files it pulls in).
package sqlapi

import "embed"

// FS holds the code package's *.sql files.
//
//go:embed *.sql
var FS embed.FS
