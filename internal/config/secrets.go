package config

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// secretKinds are the secrets that must come from the environment. The file is scanned as text, line by line, so
// a secret is found wherever it is: a value, a key, a comment, or a line that is not valid YAML.
var secretKinds = []struct {
	re   *regexp.Regexp
	ok   func(match string) bool // nil: every match is a secret
	what string
	env  string
}{
	{re: regexp.MustCompile(`sk_(live|test)_[A-Za-z0-9]`), what: "a Stripe secret key", env: "STRIPE_SECRET_KEY"},
	{re: regexp.MustCompile(`rk_(live|test)_[A-Za-z0-9]`), what: "a Stripe restricted key", env: "STRIPE_SECRET_KEY"},
	{re: regexp.MustCompile(`whsec_[A-Za-z0-9]`), what: "a Stripe webhook signing secret", env: "STRIPE_WEBHOOK_SECRET"},
	{re: regexp.MustCompile(`(^|[^A-Za-z0-9_])re_[A-Za-z0-9_]{16,}`), ok: resendKeyLike, what: "a Resend API key", env: "RESEND_API_KEY"},
	{re: regexp.MustCompile(`(?i)smtps?://[^/\s@]*:[^/\s@]*@`), what: "an SMTP URL with a password", env: "SMTP_URL"},
	{re: regexp.MustCompile(`(?i)postgres(ql)?://[^/\s@]*:[^/\s@]*@`), what: "a database URL with a password", env: "DATABASE_URL"},
}

// resendKeyLike tells a Resend key (re_ and a random token, mixed case with digits) from names such as
// re_engagement_prompt, which are lowercase.
func resendKeyLike(match string) bool {
	i := strings.Index(match, "re_")
	token := match[i+3:]
	return strings.ContainsFunc(token, unicode.IsDigit) && strings.ContainsFunc(token, unicode.IsUpper)
}

// scanSecrets records an error for each secret-looking value. The message never repeats the secret.
func (p *parser) scanSecrets(data []byte) {
	for i, line := range strings.Split(string(data), "\n") {
		for _, k := range secretKinds {
			loc := k.re.FindStringIndex(line)
			if loc == nil || (k.ok != nil && !k.ok(line[loc[0]:loc[1]])) {
				continue
			}
			start := loc[0]
			if j := strings.Index(line[start:loc[1]], "re_"); k.env == "RESEND_API_KEY" && j >= 0 {
				start += j
			}
			col := utf8.RuneCountInString(line[:start]) + 1
			p.add(Diagnostic{File: p.file, Line: i + 1, Col: col,
				Message: fmt.Sprintf("this looks like %s: secrets never go in this file; set %s in the environment instead", k.what, k.env)})
		}
	}
}

// redactions are the secrets Redact masks: each keeps its prefix (what kind of secret it was) and loses the rest.
var redactions = []struct {
	re   *regexp.Regexp
	ok   func(match string) bool // nil: every match is a secret
	keep int                     // bytes of the match kept: the prefix
}{
	{re: regexp.MustCompile(`(sk|rk)_(live|test)_[A-Za-z0-9]+`), keep: 8},
	{re: regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`), keep: 6},
	{re: regexp.MustCompile(`re_[A-Za-z0-9_]{16,}`), ok: resendKeyLike, keep: 3},
	{re: regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/=-]+`), keep: 7},
}

// urlPasswordRE finds the password of postgres://, smtp:// and smtps:// URLs (group 1 is what comes before it).
var urlPasswordRE = regexp.MustCompile(`(?i)((?:postgres(?:ql)?|smtps?)://[^/\s:@]*:)[^/\s@]*@`)

// Redacted replaces a masked secret.
const Redacted = "[REDACTED]"

// Redact masks every secret in s that tollgate knows the shape of: Stripe secret, restricted and webhook keys
// (sk_live_..., rk_test_..., whsec_...), Resend keys, bearer tokens, and the passwords of database and SMTP URLs.
// What is logged from an upstream error (Stripe's, a provider's) goes through it.
func Redact(s string) string {
	for _, r := range redactions {
		s = r.re.ReplaceAllStringFunc(s, func(m string) string {
			if r.ok != nil && !r.ok(m) {
				return m
			}
			return m[:r.keep] + Redacted
		})
	}
	return urlPasswordRE.ReplaceAllString(s, "${1}"+Redacted+"@")
}
