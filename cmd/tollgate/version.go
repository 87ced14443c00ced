package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/tollgate/tollgate/internal/schema"
)

// version is set at release builds: go build -ldflags "-X main.version=v1.2.3".
var version = ""

func init() {
	register(command{name: "version", summary: "print the version, its schema version and the Go version", run: runVersion})
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			fmt.Fprint(stdout, "usage: tollgate version\n\nPrints tollgate's version, the schema version it migrates to and the Go version.\n")
			return 0
		}
		fmt.Fprintf(stderr, "tollgate version: takes no arguments\n")
		return 2
	}
	latest, err := schema.LatestVersion()
	if err != nil {
		fmt.Fprintf(stderr, "tollgate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "tollgate %s (schema version %d, %s)\n", buildVersion(), latest, runtime.Version())
	return 0
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + modified
	}
	return v
}
