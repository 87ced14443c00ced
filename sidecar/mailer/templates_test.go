package mailer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
)

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}

func TestBuiltInTemplateHasEveryValue(t *testing.T) {
	t.Parallel()
	tpl, err := LoadTemplates("")
	require.NoError(t, err)
	require.Equal(t, []string{"trial_ending", "upgrade_prompt"}, tpl.Names())
	d := SampleData("api_calls")
	d.Used, d.Quota = 100, 100
	r, err := tpl.Render("upgrade_prompt", d)
	require.NoError(t, err)
	require.Equal(t, "You've reached your api calls limit", r.Subject)
	for _, part := range []string{r.Text, r.HTML} {
		require.Contains(t, part, "https://example.test/pricing")
		require.Contains(t, part, "100")
		require.Contains(t, part, "free")
		require.Contains(t, part, "31 January 2030")
	}
	require.Contains(t, r.HTML, `<title>You&#39;ve reached your api calls limit</title>`, "HTML is escaped")

	d.Message, d.ResetsAt = "Upgrade <now> & save", nil
	r, err = tpl.Render("upgrade_prompt", d)
	require.NoError(t, err)
	require.Contains(t, r.Text, "Upgrade <now> & save\n\nYou've used 100 of the 100 api calls included in the free plan.\n")
	require.Contains(t, r.HTML, "Upgrade &lt;now&gt; &amp; save")
	require.NotContains(t, r.Text, "resets")
	require.NotContains(t, r.HTML, "resets")

	_, err = tpl.Render("nope", d)
	require.ErrorContains(t, err, `no email template "nope"`)
}

// The built-in trial prompt: the plan on trial and when it ends (ResetsAt is the trial's end).
func TestBuiltInTrialTemplate(t *testing.T) {
	t.Parallel()
	tpl, err := LoadTemplates("")
	require.NoError(t, err)
	d := SampleData("")
	d.Plan = "pro"
	r, err := tpl.Render("trial_ending", d)
	require.NoError(t, err)
	require.Equal(t, "Your pro trial ends on 31 January 2030", r.Subject)
	for _, part := range []string{r.Text, r.HTML} {
		require.Contains(t, part, "https://example.test/pricing")
		require.Contains(t, part, "no payment method")
	}
	d.ResetsAt = nil
	r, err = tpl.Render("trial_ending", d)
	require.NoError(t, err)
	require.Equal(t, "Your pro trial ends soon", r.Subject)
}

func TestTemplatesDirectoryOverridesAndAdds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"upgrade_prompt.subject.tmpl": "{{.Customer}}: {{.Used}}/{{.Quota}}\n  on {{.Plan}}\n",
		"welcome.subject.tmpl":        "Welcome",
		"welcome.txt.tmpl":            "Hello {{.Email}}",
		"welcome.html.tmpl":           "<p>Hello {{.Email}}</p>",
		"README.md":                   "not a template",
	})
	tpl, err := LoadTemplates(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"trial_ending", "upgrade_prompt", "welcome"}, tpl.Names())
	r, err := tpl.Render("upgrade_prompt", SampleData("api"))
	require.NoError(t, err)
	require.Equal(t, "cus_preview: 100/100 on free", r.Subject, "one line")
	require.Contains(t, r.Text, "https://example.test/pricing", "the built-in text part stays")
	r, err = tpl.Render("welcome", SampleData("api"))
	require.NoError(t, err)
	require.Equal(t, Rendered{"Welcome", "Hello preview@example.test", "<p>Hello preview@example.test</p>"}, r)
}

// A template that cannot render fails when the templates are loaded (at start-up), not when an email is due.
func TestBrokenTemplatesFailAtLoad(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"syntax":        {map[string]string{"upgrade_prompt.txt.tmpl": "{{if .Used}}"}, "upgrade_prompt.txt.tmpl"},
		"unknown field": {map[string]string{"upgrade_prompt.html.tmpl": "{{.Nope}}"}, "can't evaluate field Nope"},
		"unknown func":  {map[string]string{"upgrade_prompt.subject.tmpl": "{{shout .Feature}}"}, `function "shout" not defined`},
		"empty subject": {map[string]string{"upgrade_prompt.subject.tmpl": "  "}, "the subject is empty"},
		"missing parts": {map[string]string{"promo.txt.tmpl": "x"}, "missing promo.subject.tmpl, promo.html.tmpl"},
		"bad name":      {map[string]string{"Promo.txt.tmpl": "x"}, `template name "Promo"`},
		"only when set": {map[string]string{"upgrade_prompt.txt.tmpl": "{{with .ResetsAt}}{{.Nope}}{{end}}"}, "can't evaluate field Nope"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			_, err := LoadTemplates(dir)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := LoadTemplates(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "email templates")
}

func testConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "tollgate.yaml"), []byte(`
plans:
  free: { default: true }
  pro: {}
features:
  api_calls:
    period: 30d
    limits: { free: 250, pro: unlimited }
    message: "You've reached your free tier limit. Upgrade to continue."
    upgrade_prompt: { email: upgrade_prompt }
  exports:
    period: month
    limits: { free: 3 }
email:
  from: "Acme <billing@acme.test>"
  upgrade_url: https://acme.test/pricing
`+extra))
	require.NoError(t, err)
	return cfg
}

func TestTemplatesForChecksEveryFeature(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "")
	_, err := TemplatesFor(cfg)
	require.NoError(t, err)
	cfg.Features[1].UpgradePrompt = "export_prompt"
	_, err = TemplatesFor(cfg)
	require.ErrorContains(t, err, `feature exports: upgrade_prompt.email "export_prompt" is not a template`)

	cfg = testConfig(t, "stripe: { trial_prompt: { email: trial_ending } }\n")
	_, err = TemplatesFor(cfg)
	require.NoError(t, err)
	cfg.Stripe.TrialPrompt = "trial_reminder"
	_, err = TemplatesFor(cfg)
	require.ErrorContains(t, err, `stripe.trial_prompt.email "trial_reminder" is not a template`)
}

func TestPreview(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "")
	msg, err := Preview(cfg, "api_calls")
	require.NoError(t, err)
	out := FormatMessage(msg)
	for _, want := range []string{
		"From: Acme <billing@acme.test>", "To: preview@example.test", "Subject: You've reached your api calls limit",
		"You've reached your free tier limit. Upgrade to continue.", "250 of the 250 api calls included in the free plan", "https://acme.test/pricing",
		"Message-ID: <tollgate-email-0-", "@acme.test>",
	} {
		require.Contains(t, out, want)
	}
	_, err = Preview(cfg, "exports")
	require.ErrorContains(t, err, "no upgrade_prompt")
	_, err = Preview(cfg, "nope")
	require.ErrorContains(t, err, `no feature "nope"`)
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	pool := newPool(t, "postgres://nobody@127.0.0.1:1/none", 1) // never used: FromConfig does not connect
	cfg := testConfig(t, "  provider: resend\n  rate_per_second: 5\n  max_attempts: 3\nsidecar:\n  poll_interval: 2s\n")
	_, err := FromConfig(pool, cfg, config.Env{}, nil, nil)
	require.ErrorContains(t, err, "RESEND_API_KEY")
	reg := metrics.NewRegistry()
	m, err := FromConfig(pool, cfg, config.Env{ResendAPIKey: "re_x"}, reg, nil)
	require.NoError(t, err)
	require.Equal(t, "mailer", m.Name())
	require.Equal(t, 5.0, m.opts.RatePerSecond)
	require.Equal(t, 3, m.opts.MaxAttempts)
	require.Equal(t, 2*time.Second, m.opts.PollInterval)
	require.Equal(t, "resend", m.opts.Provider.Name())
	require.ErrorContains(t, m.Ready(context.Background()), "not connected yet")

	var out bytes.Buffer
	reg.Write(&out)
	for _, name := range []string{"tollgate_email_listener_up 0", "tollgate_emails_dead NaN", "# TYPE tollgate_emails_sent_total counter",
		"# TYPE tollgate_email_handoff_seconds histogram"} {
		require.Contains(t, out.String(), name)
	}

	cfg = testConfig(t, "  provider: smtp\n")
	_, err = FromConfig(pool, cfg, config.Env{}, nil, nil)
	require.ErrorContains(t, err, "SMTP_URL")
	m, err = FromConfig(pool, cfg, config.Env{SMTPURL: "smtp://mail.acme.test"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, "mail.acme.test:587", m.opts.Provider.(*SMTPProvider).addr)

	cfg = testConfig(t, "  templates: tpl\n")
	_, err = FromConfig(pool, cfg, config.Env{}, nil, nil)
	require.ErrorContains(t, err, "email templates")
}

func TestLogProviderPrintsTheEmail(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	var out lockedBuffer
	b.start(t, NewLogProvider(&out), nil)
	b.customer(t, "alice", "alice@example.test")
	b.hitLimit(t, "alice", 1)
	rows := b.waitFinal(t, 1)
	require.Equal(t, "sent", rows[0].Status)
	require.Equal(t, "log", *rows[0].Provider)
	s := out.String()
	require.Contains(t, s, "To: alice@example.test")
	require.Contains(t, s, "https://acme.test/pricing")
	require.Contains(t, s, *rows[0].ProviderID)
	require.Equal(t, 1, strings.Count(s, "--- email "))
}

func TestKeysAreStablePerRow(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := IdempotencyKey(7, "alice", "api", start)
	require.Equal(t, k, IdempotencyKey(7, "alice", "api", start))
	require.NotEqual(t, k, IdempotencyKey(8, "alice", "api", start))
	require.NotEqual(t, k, IdempotencyKey(7, "bob", "api", start))
	require.Regexp(t, `^tollgate-email-7-[0-9a-f]{16}$`, k)
	require.Equal(t, "tollgate-email-7-e45375746d5b2a98", k, "keys of rows already in outboxes never change")
	// a window without a start (lifetime: -infinity) has a key of its own
	life := IdempotencyKey(7, "alice", "api", time.Time{})
	require.Regexp(t, `^tollgate-email-7-[0-9a-f]{16}$`, life)
	require.NotEqual(t, k, life)
	require.Equal(t, life, IdempotencyKey(7, "alice", "api", time.Time{}))
	require.Equal(t, "<"+strings.TrimPrefix(k, "")+"@acme.test>", MessageID(7, "alice", "api", start, "Acme <billing@acme.test>"))
	require.Equal(t, "<"+k+"@tollgate.invalid>", MessageID(7, "alice", "api", start, ""))
}

func TestBuildMIMEIsStableAndSafe(t *testing.T) {
	t.Parallel()
	msg := &Message{MessageID: "<tollgate-email-1-ab@acme.test>", From: "Acme Café <billing@acme.test>", To: "a@example.test",
		Subject: "Hi\r\nBcc: evil@example.test", Text: "line 1\nline 2 é", HTML: "<p>é</p>"}
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, err := buildMIME(msg, date)
	require.NoError(t, err)
	b, err := buildMIME(msg, date)
	require.NoError(t, err)
	require.Equal(t, a, b)
	s := string(a)
	require.Contains(t, s, "Subject: Hi Bcc: evil@example.test\r\n", "no header injection")
	require.NotContains(t, s, "\r\nBcc:")
	require.Contains(t, s, "From: =?utf-8?q?Acme_Caf=C3=A9?= <billing@acme.test>\r\n")
	require.Contains(t, s, "Message-ID: <tollgate-email-1-ab@acme.test>\r\n")
	msg.To = "not an address"
	_, err = buildMIME(msg, date)
	require.Error(t, err)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
