package mailer

import (
	"fmt"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

// Preview renders the upgrade prompt of feature as cfg's mailer would send it to a customer of the default
// plan who just used the whole quota (`tollgate preview-email`). The message has id 0 and the keys of a row
// with id 0.
func Preview(cfg *config.Config, feature string) (*Message, error) {
	f, ok := cfg.Feature(feature)
	if !ok {
		return nil, fmt.Errorf("no feature %q in %s", feature, cfg.File)
	}
	if f.UpgradePrompt == "" {
		return nil, fmt.Errorf("feature %s sends no email: it has no upgrade_prompt", feature)
	}
	tpl, err := TemplatesFor(cfg)
	if err != nil {
		return nil, err
	}
	d := SampleData(feature)
	d.UpgradeURL = cfg.Email.UpgradeURL
	d.Message = f.Message
	d.Plan = cfg.DefaultPlan().Name
	for _, l := range f.Limits {
		if l.Plan == d.Plan && l.Quota != nil {
			d.Quota, d.Used = *l.Quota, *l.Quota
		}
	}
	r, err := tpl.Render(f.UpgradePrompt, d)
	if err != nil {
		return nil, err
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Message{
		IdempotencyKey: IdempotencyKey(0, d.Customer, feature, start),
		MessageID:      MessageID(0, d.Customer, feature, start, cfg.Email.From),
		From:           cfg.Email.From,
		To:             d.Email,
		Subject:        r.Subject,
		Text:           r.Text,
		HTML:           r.HTML,
	}, nil
}
