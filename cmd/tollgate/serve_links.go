package main

import (
	"context"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/sidecar"
	"github.com/tollgate/tollgate/sidecar/upgrade"
)

// Signed upgrade links: GET /upgrade/{token} on sidecar.listen, and the key written into the database at start-up
// so that tollgate.upgrade_link can mint links for the app's 402. They need TOLLGATE_LINK_SECRET and
// upgrade_links.public_url; with only one of them, serve says what is missing and runs with links off (the app
// and the emails use the static upgrade_url).
func init() {
	plugServe("upgrade links", func(_ context.Context, srv *sidecar.Server, env config.Env, deps serveDeps) error {
		cfg := srv.Config()
		signer, err := upgrade.SignerFromConfig(cfg, env)
		if err != nil {
			return err
		}
		switch {
		case signer == nil && env.LinkSecret != "":
			srv.Logger().Warn("TOLLGATE_LINK_SECRET is set but tollgate.yaml has no upgrade_links.public_url: upgrade links are off")
		case signer == nil && cfg.UpgradeLinks.Enabled():
			srv.Logger().Warn("upgrade_links.public_url is set but TOLLGATE_LINK_SECRET is not: upgrade links are off")
		}
		srv.Add(upgrade.NewConfigurer(srv.Pool(), signer, cfg.UpgradeLinks.PublicURL, cfg.UpgradeLinks.Expires, srv.Logger()))
		opt := upgrade.FromConfig(cfg)
		opt.DB, opt.Signer, opt.Logger, opt.Metrics = srv.Pool(), signer, srv.Logger(), srv.Metrics()
		if deps.Stripe != nil {
			opt.Stripe = deps.Stripe
		}
		h, err := upgrade.NewHandler(opt)
		if err != nil {
			return err
		}
		srv.Handle("GET /upgrade/{token}", h)
		return nil
	})
}
