package main

import "github.com/tollgate/tollgate/internal/apply"

// tollgate apply FILE: the logic and its tests live in internal/apply.
func init() {
	register(command{name: "apply", summary: "write the plans, features, limits and routes of a tollgate.yaml into the database", run: apply.Run})
}
