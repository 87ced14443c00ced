package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tollgate/tollgate/sidecar/mailer"
)

const previewEmailUsage = `usage: tollgate preview-email FEATURE [--config FILE]

Renders the upgrade-prompt email of FEATURE (its upgrade_prompt.email template, from email.templates or the
built-in ones) to stdout: headers, the plain-text part and the HTML part, as the mailer would send it to a
customer of the default plan who has just used the whole quota. Nothing is sent and no database is needed.

  --config FILE   tollgate.yaml (default: tollgate.yaml)
`

func init() {
	register(command{name: "preview-email", summary: "render a feature's upgrade-prompt email to stdout", run: runPreviewEmail})
}

func runPreviewEmail(_ context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("preview-email", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	configPath := flags.String("config", "tollgate.yaml", "")
	var positional []string
	for {
		if err := flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, previewEmailUsage)
				return 0
			}
			fmt.Fprintf(stderr, "tollgate preview-email: %v\n\n%s", err, previewEmailUsage)
			return 2
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		args = flags.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "tollgate preview-email: name one FEATURE\n\n%s", previewEmailUsage)
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr, "preview-email")
	if !ok {
		return 1
	}
	msg, err := mailer.Preview(cfg, positional[0])
	if err != nil {
		fmt.Fprintf(stderr, "tollgate preview-email: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, mailer.FormatMessage(msg))
	return 0
}
