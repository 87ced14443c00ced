package mailer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/tests/pgtest"
)

func smtpProvider(t testing.TB, url string) *SMTPProvider {
	t.Helper()
	p, err := NewSMTPProvider(url, 5*time.Second)
	require.NoError(t, err)
	return p
}

// Acceptance: a free customer crosses the limit and exactly one email arrives in mailpit within 2 s, with the
// upgrade URL and the numbers.
func TestLimitEmailArrivesOnceWithin2s(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	mp := startMailpit(t)
	b.start(t, smtpProvider(t, mp.smtpURL()), func(o *Options) {
		o.PollInterval = time.Minute // the notification must do it
		o.RatePerSecond = 2          // the default
	})
	b.customer(t, "alice", "alice@example.test")
	require.True(t, b.consume(t, "alice", 3))
	crossed := time.Now()
	require.False(t, b.consume(t, "alice", 1))

	var msgs []mailpitMessage
	require.Eventually(t, func() bool { msgs = mp.messages(t); return len(msgs) > 0 }, 2*time.Second, 10*time.Millisecond)
	t.Logf("arrived %s after the limit was crossed", time.Since(crossed))
	require.Equal(t, "sent", b.waitFinal(t, 1)[0].Status)
	msgs = mp.messages(t)
	require.Len(t, msgs, 1)
	require.Equal(t, "alice@example.test", msgs[0].To[0].Address)
	require.Equal(t, "You've reached your api limit", msgs[0].Subject)
	text := mp.text(t, msgs[0].ID)
	require.Contains(t, text, "https://acme.test/pricing")
	require.Regexp(t, `You've used 3 of the 3 api included in the free plan; your usage resets on \d+ \w+ \d{4}\.`, text)
	rows := b.emails(t)
	require.Equal(t, "smtp", *rows[0].Provider)
	require.Equal(t, "<"+msgs[0].MessageID+">", *rows[0].ProviderID)

	// more blocked calls in the same window send nothing more
	require.False(t, b.consume(t, "alice", 3))
	b.customer(t, "bob", "bob@example.test")
	b.hitLimit(t, "bob", 3)
	require.Len(t, b.waitFinal(t, 2), 2)
	require.Len(t, mp.messages(t), 2)
}

// Acceptance: a consume that is rolled back produces no event and no email.
func TestRolledBackConsumeSendsNoEmail(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	f := newFakeResend(t)
	b.start(t, f.provider(t, 5*time.Second), nil)
	b.customer(t, "alice", "alice@example.test")
	b.customer(t, "bob", "bob@example.test")
	ctx := context.Background()
	tx, err := b.app.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	for range 2 {
		_, err = tx.Exec(ctx, `SELECT tollgate.consume('alice', 'api')`)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Rollback(ctx))
	// bob's limit comes after alice's rolled-back one: once bob's email is out, alice's would be too
	b.hitLimit(t, "bob", 1)
	rows := b.waitFinal(t, 1)
	require.Equal(t, "bob", rows[0].Customer)
	_, delivered := f.counts()
	require.Equal(t, 1, delivered)
	require.EqualValues(t, 0, b.count(t, `SELECT count(*) FROM tollgate.events WHERE customer = 'alice'`))
}

// Acceptance: the listener's backend is killed and another limit is crossed meanwhile; its email still
// arrives, once. The poll is an hour, so only the reconnect and its drain can deliver it.
func TestListenerReconnectsAfterTerminate(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	mp := startMailpit(t)
	m := b.start(t, smtpProvider(t, mp.smtpURL()), func(o *Options) { o.PollInterval = time.Hour })
	b.customer(t, "alice", "alice@example.test")
	b.customer(t, "bob", "bob@example.test")
	b.hitLimit(t, "alice", 1)
	b.waitFinal(t, 1)

	ctx := context.Background()
	listener := func() (pid int) {
		b.owner.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'tollgate mailer listener'`).Scan(&pid)
		return pid
	}
	old := listener()
	require.NotZero(t, old)
	var ok bool
	require.NoError(t, b.owner.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&ok))
	require.True(t, ok)
	b.hitLimit(t, "bob", 1) // its NOTIFY goes to nobody

	rows := b.waitFinal(t, 2)
	require.Equal(t, "sent", rows[1].Status)
	msgs := mp.messages(t)
	require.Len(t, msgs, 2)
	require.NoError(t, m.Ready(ctx))
	require.Eventually(t, func() bool { p := listener(); return p != 0 && p != old }, 5*time.Second, 10*time.Millisecond)
}

// Ready fails while the listener cannot connect, and the mailer recovers when it can.
func TestReadyReportsADeadListener(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	f := newFakeResend(t)
	m := b.start(t, f.provider(t, 5*time.Second), func(o *Options) { o.PollInterval = 50 * time.Millisecond })
	ctx := context.Background()
	// the pools connect before connections are refused: the app's, and all of the mailer's
	b.customer(t, "alice", "alice@example.test")
	var conns []*pgxpool.Conn
	for range b.sidecar.Config().MaxConns {
		c, err := b.sidecar.Acquire(ctx)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	admin := pgtest.Server(t).Admin() // a database cannot refuse connections from inside itself
	_, err := admin.Exec(ctx, `ALTER DATABASE `+quoteIdent(b.db.Name)+` ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	b.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()
		AND application_name = 'tollgate mailer listener'`)
	require.Eventually(t, func() bool { return m.Ready(ctx) != nil }, 10*time.Second, 5*time.Millisecond)
	require.ErrorContains(t, m.Ready(ctx), "listener is not connected")

	// meanwhile the pools' open connections still work: an email goes out on the poll
	b.hitLimit(t, "alice", 1)
	require.Equal(t, "sent", b.waitFinal(t, 1)[0].Status)

	_, err = admin.Exec(ctx, `ALTER DATABASE `+quoteIdent(b.db.Name)+` ALLOW_CONNECTIONS true`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return m.Ready(ctx) == nil }, 20*time.Second, 5*time.Millisecond)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// The poll finds events whose notification never came.
func TestPollFindsEventsWithoutNotification(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	f := newFakeResend(t)
	b.start(t, f.provider(t, 5*time.Second), func(o *Options) { o.PollInterval = 50 * time.Millisecond })
	b.customer(t, "alice", "alice@example.test")
	// an event written without NOTIFY, as if the notification were lost
	b.exec(t, `INSERT INTO tollgate.events (kind, customer, feature, plan, used, quota, threshold, period_start)
		VALUES ('limit_reached', 'alice', 'api', 'free', 1, 1, 100, date_trunc('month', now()))`)
	require.Equal(t, "sent", b.waitFinal(t, 1)[0].Status)
}

// STARTTLS is used when the server offers it, and credentials from SMTP_URL are sent over it.
func TestSMTPUsesSTARTTLSAndAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	certFile, keyFile, roots := selfSigned(t)
	mp := startMailpit(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls",
		"--smtp-auth-accept-any")
	p := smtpProvider(t, "smtp://user:secret@"+mp.smtpAddr)
	p.tlsConfig.RootCAs = roots
	b.start(t, p, nil)
	b.customer(t, "alice", "alice@example.test")
	b.hitLimit(t, "alice", 1)
	require.Equal(t, "sent", b.waitFinal(t, 1)[0].Status)
	require.Len(t, mp.messages(t), 1)
}

// SMTP answers: 5xx is permanent with the server's message, 4xx and refused connections are retried.
func TestSMTPFailureClasses(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, "--smtp-allowed-recipients", `^ok@`)
	p := smtpProvider(t, mp.smtpURL())
	msg := &Message{ID: 1, MessageID: "<a@acme.test>", From: "Acme <billing@acme.test>", To: "no@example.test", Subject: "s", Text: "t", HTML: "h"}
	_, err := p.Send(context.Background(), msg)
	se := classify(err)
	require.True(t, se.Permanent, "%v", err)
	require.Contains(t, se.Error(), "smtp: 550")

	refused := smtpProvider(t, "smtp://"+freeAddr(t))
	_, err = refused.Send(context.Background(), msg)
	se = classify(err)
	require.False(t, se.Permanent)
	require.False(t, se.Unknown, "nothing was sent")

	msg.To = "ok@example.test"
	id, err := p.Send(context.Background(), msg)
	require.NoError(t, err)
	require.Equal(t, "<a@acme.test>", id)
}

func selfSigned(t testing.TB) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile, roots
}
