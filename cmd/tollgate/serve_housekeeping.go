package main

import (
	"context"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/housekeeping"
)

// Every `tollgate serve` prunes the idempotency keys of consume and require hourly (they are kept 24 hours).
func init() {
	plugServe("idempotency-prune", func(_ context.Context, srv *sidecar.Server, _ config.Env, _ serveDeps) error {
		p, err := housekeeping.NewPruner(housekeeping.Options{DB: srv.Pool(), Logger: srv.Logger(), Metrics: srv.Metrics()})
		if err != nil {
			return err
		}
		srv.Add(p)
		return nil
	})
}
