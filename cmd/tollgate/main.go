// Command tollgate is the CLI of tollgate: migrations, configuration, the sidecar and its tools.
//
// Each subcommand lives in its own file and registers itself in init; `tollgate help` lists them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// A command is one `tollgate NAME` subcommand. run gets the arguments after NAME and returns the exit
// status: 0 success, 1 failure, 2 wrong arguments. With -h or --help it prints its usage to stdout and
// returns 0 (that is what `tollgate help NAME` runs).
type command struct {
	name    string
	summary string // one line, for `tollgate help`
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// register adds a subcommand; call it from an init function.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("tollgate: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return help(ctx, args[1:], stdout, stderr)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func help(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(ctx, []string{"--help"}, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "tollgate: freemium gating inside PostgreSQL\n\nusage: tollgate COMMAND [arguments]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "help", "show this list, or a command's usage: tollgate help COMMAND")
}
