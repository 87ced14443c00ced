package mailer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/sidecar/upgrade"
)

// With upgrade links on, every upgrade prompt's button is the customer's signed link, naming the email, its event
// and its variant; a variant with a template of its own sends that template with its message.
func TestUpgradePromptsCarryTheirSignedLink(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	ctx := context.Background()
	b.exec(t, `SELECT tollgate.define_variant('api', 'control', 50)`)
	b.exec(t, `SELECT tollgate.define_variant('api', 'short', 50, 'Out of calls: one click to upgrade.', 'short_prompt')`)
	// one customer of each variant (the assignment is a hash: find them)
	pick := map[string]string{}
	for i := 0; len(pick) < 2; i++ {
		c := "c" + string(rune('a'+i))
		var v string
		require.NoError(t, b.owner.QueryRow(ctx, `SELECT tollgate._variant($1, 'api')`, c).Scan(&v))
		if _, ok := pick[v]; !ok {
			pick[v] = c
		}
	}
	for _, c := range pick {
		b.customer(t, c, c+"@example.test")
		b.hitLimit(t, c, 1)
	}

	dir := t.TempDir()
	for name, src := range map[string]string{
		"short_prompt.subject.tmpl": "Out of {{human .Feature}}",
		"short_prompt.txt.tmpl":     "{{.Message}} {{.UpgradeURL}} (variant {{.Variant}}; plans: {{.PricingURL}})",
		"short_prompt.html.tmpl":    `<p>{{.Message}} <a href="{{.UpgradeURL}}">Upgrade</a></p>`,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600))
	}
	tpl, err := LoadTemplates(dir)
	require.NoError(t, err)
	signer, err := upgrade.NewSigner("mailer-link-secret-0123456789", "")
	require.NoError(t, err)
	f := newFakeResend(t)
	b.start(t, f.provider(t, 5*time.Second), func(o *Options) {
		o.Templates = tpl
		o.Links = &upgrade.Minter{Signer: signer, BaseURL: "https://billing.acme.test", TTL: 30 * 24 * time.Hour}
	})
	rows := b.waitFinal(t, 2)
	_, delivered := f.snapshot()
	require.Len(t, delivered, 2)
	linkRE := regexp.MustCompile(`https://billing\.acme\.test/upgrade/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)`)
	for _, d := range delivered {
		var msg struct {
			To      []string `json:"to"`
			Subject string   `json:"subject"`
			Text    string   `json:"text"`
			HTML    string   `json:"html"`
		}
		require.NoError(t, json.Unmarshal(d.Body, &msg))
		m := linkRE.FindStringSubmatch(msg.Text)
		require.NotNil(t, m, msg.Text)
		require.Contains(t, msg.HTML, m[0], "the button too")
		p, _, err := signer.Verify(m[1], time.Now())
		require.NoError(t, err)
		require.Equal(t, msg.To, []string{p.Customer + "@example.test"})
		require.Equal(t, "api", p.Feature)
		var email, event int64
		var variant string
		require.NoError(t, b.owner.QueryRow(ctx, `SELECT id, event_id, variant FROM tollgate.emails WHERE customer = $1`, p.Customer).
			Scan(&email, &event, &variant))
		require.Equal(t, []any{email, event, variant}, []any{p.EmailID, p.EventID, p.Variant})
		require.WithinDuration(t, time.Now().Add(30*24*time.Hour), p.Expires, time.Minute)
		if p.Customer == pick["short"] {
			require.Equal(t, "Out of api", msg.Subject, "the variant's template")
			require.Contains(t, msg.Text, "Out of calls: one click to upgrade.")
			require.Contains(t, msg.Text, "(variant short; plans: https://acme.test/pricing)")
		} else {
			require.Equal(t, "You've reached your api limit", msg.Subject, "control: the feature's template")
			require.NotContains(t, msg.Text, "https://acme.test/pricing", "the button is the signed link")
		}
	}
	require.Equal(t, "sent", rows[0].Status)
}

// A variant's email template must exist: the start stops, not an email later.
func TestVariantTemplatesAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("t.yaml", []byte(`plans: { free: { default: true } }
features:
  api:
    period: month
    limits: { free: 1 }
    upgrade_prompt: { email: upgrade_prompt, variants: { control: { weight: 1 }, b: { weight: 1, email: missing_prompt } } }
`))
	require.NoError(t, err)
	_, err = TemplatesFor(cfg)
	require.ErrorContains(t, err, `feature api: upgrade_prompt.variants.b.email "missing_prompt" is not a template`)
}
