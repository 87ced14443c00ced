package mailer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"
)

// SMTPProvider sends through an SMTP server (SMTP_URL). smtp:// uses STARTTLS when the server offers it;
// smtps:// is TLS from the first byte. Every attempt at one email carries the same Message-ID, derived from the
// outbox row. SMTP has no idempotency: an attempt cut off after the message was sent but before the server's
// answer arrived cannot be told from one that failed, so such an email is given up rather than risk a second
// copy (see docs/emails.md).
type SMTPProvider struct {
	addr      string // host:port
	host      string
	implicit  bool // smtps://
	auth      smtp.Auth
	timeout   time.Duration
	tlsConfig *tls.Config
	helo      string
}

// NewSMTPProvider parses rawURL (smtp://user:password@host:port or smtps://...). timeout bounds one
// delivery (0 means 30 s).
func NewSMTPProvider(rawURL string, timeout time.Duration) (*SMTPProvider, error) {
	if rawURL == "" {
		return nil, errors.New("email provider smtp needs SMTP_URL in the environment (smtp://user:password@host:port)")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return nil, errors.New("SMTP_URL must look like smtp://user:password@host:port or smtps://...")
	}
	p := &SMTPProvider{host: u.Hostname(), implicit: u.Scheme == "smtps", timeout: timeout}
	port := u.Port()
	switch {
	case port != "":
	case p.implicit:
		port = "465"
	default:
		port = "587"
	}
	p.addr = net.JoinHostPort(p.host, port)
	if u.User != nil && u.User.Username() != "" {
		pass, _ := u.User.Password()
		p.auth = smtp.PlainAuth("", u.User.Username(), pass, p.host)
	}
	if p.timeout <= 0 {
		p.timeout = 30 * time.Second
	}
	p.tlsConfig = &tls.Config{ServerName: p.host, MinVersion: tls.VersionTLS12}
	p.helo, _ = os.Hostname()
	if p.helo == "" {
		p.helo = "localhost"
	}
	return p, nil
}

func (p *SMTPProvider) Name() string     { return "smtp" }
func (p *SMTPProvider) Idempotent() bool { return false }

func (p *SMTPProvider) Send(ctx context.Context, msg *Message) (string, error) {
	data, err := buildMIME(msg, time.Now())
	if err != nil {
		return "", permanent("smtp: %v", err)
	}
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := &net.Dialer{Deadline: deadline}
	var conn net.Conn
	if p.implicit {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: p.tlsConfig}).DialContext(ctx, "tcp", p.addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", p.addr)
	}
	if err != nil {
		return "", retryable(fmt.Errorf("smtp: %w", err))
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, p.host)
	if err != nil {
		return "", smtpError(err, false)
	}
	defer c.Close()
	if err := c.Hello(p.helo); err != nil {
		return "", smtpError(err, false)
	}
	if !p.implicit {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(p.tlsConfig); err != nil {
				return "", smtpError(err, false)
			}
		}
	}
	if p.auth != nil {
		if ok, _ := c.Extension("AUTH"); !ok {
			return "", permanent("smtp: SMTP_URL has credentials but %s offers no AUTH", p.addr)
		}
		if err := c.Auth(p.auth); err != nil {
			return "", smtpError(err, false)
		}
	}
	from, to, err := envelope(msg)
	if err != nil {
		return "", permanent("smtp: %v", err)
	}
	if err := c.Mail(from.Address); err != nil {
		return "", smtpError(err, false)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return "", smtpError(err, false)
	}
	w, err := c.Data()
	if err != nil {
		return "", smtpError(err, false)
	}
	if _, err := w.Write(data); err != nil {
		return "", smtpError(err, false)
	}
	// Close sends the final "." and reads the server's answer: from here on, a lost connection leaves it
	// unknown whether the server took the message.
	if err := w.Close(); err != nil {
		return "", smtpError(err, true)
	}
	c.Quit() // the message is accepted; a failed QUIT changes nothing
	return msg.MessageID, nil
}

// smtpError classifies an SMTP failure: the server's 5xx answers are permanent, 4xx are retried; a network
// error is retried, and marked Unknown when it happened while the server was taking the message.
func smtpError(err error, afterData bool) *SendError {
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 500 {
			return permanent("smtp: %d %s", te.Code, te.Msg)
		}
		return retryable(fmt.Errorf("smtp: %d %s", te.Code, te.Msg))
	}
	return &SendError{Unknown: afterData, Err: fmt.Errorf("smtp: %w", err)}
}

// envelope parses the sender and the recipient.
func envelope(msg *Message) (from, to *mail.Address, err error) {
	if from, err = mail.ParseAddress(msg.From); err != nil {
		return nil, nil, fmt.Errorf("from %q: %w", msg.From, err)
	}
	if to, err = mail.ParseAddress(msg.To); err != nil {
		return nil, nil, fmt.Errorf("to %q: %w", msg.To, err)
	}
	return from, to, nil
}

// buildMIME writes msg as a multipart/alternative message (text, then HTML), quoted-printable. The boundary
// comes from the Message-ID, so the same email always has the same body.
func buildMIME(msg *Message, date time.Time) ([]byte, error) {
	from, to, err := envelope(msg)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	boundary := "tollgate-" + strings.Trim(strings.SplitN(msg.MessageID, "@", 2)[0], "<>")
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, err
	}
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(msg.Subject)))
	header("Date", date.UTC().Format(time.RFC1123Z))
	header("Message-ID", msg.MessageID)
	header("MIME-Version", "1.0")
	header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", msg.Text}, {"text/html", msg.HTML}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qw := quotedprintable.NewWriter(pw)
		qw.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(part.body, "\r\n", "\n"), "\n", "\r\n")))
		qw.Close()
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
