package main

import (
	"context"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/funnelpage"
)

// The funnel page at / of `tollgate serve`, when TOLLGATE_DASHBOARD_TOKEN or TOLLGATE_DASHBOARD_USER and
// TOLLGATE_DASHBOARD_PASSWORD are set; without them / answers 404. Half of basic auth stops the start.
func init() {
	plugServe("funnel page", func(_ context.Context, srv *sidecar.Server, env config.Env, _ serveDeps) error {
		auth := funnelpage.AuthFromEnv(env)
		if !auth.Enabled() {
			srv.Logger().Info("funnel page off: set TOLLGATE_DASHBOARD_TOKEN, or TOLLGATE_DASHBOARD_USER and TOLLGATE_DASHBOARD_PASSWORD, to serve it at /")
			return nil
		}
		page, err := funnelpage.New(funnelpage.Options{DB: srv.Pool(), Auth: auth, Logger: srv.Logger()})
		if err != nil {
			return err
		}
		srv.Handle("GET /{$}", page)
		return nil
	})
}
