package main

import (
	"context"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/mailer"
)

// The upgrade-prompt mailer runs in every `tollgate serve` (email.provider log, the default, prints the emails).
// A template that does not render, or a provider without its secret, stops the start.
func init() {
	plugServe("mailer", func(_ context.Context, srv *sidecar.Server, env config.Env, _ serveDeps) error {
		m, err := mailer.FromConfig(srv.Pool(), srv.Config(), env, srv.Metrics(), srv.Logger())
		if err != nil {
			return err
		}
		srv.Add(m)
		return nil
	})
}
