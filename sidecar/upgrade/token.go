// Package upgrade is the sidecar's side of signed upgrade links (docs/conversions.md): the tokens (minted here
// for emails, and in SQL by tollgate.upgrade_link for the app's 402), the key the sidecar writes into the
// database at start-up, and GET /upgrade/<token>, which records the click and sends the customer to Stripe
// Checkout (or the Billing Portal, or the static pricing page).
//
// A token is base64url(payload) "." base64url(HMAC-SHA256(key, payload)), both without padding, where
//
//	payload = "1|" expires "|" event "|" email "|" variant "|" feature "|" customer
//
// (expires in Unix seconds; the event and email ids and the variant empty when none; the customer last, so it
// may hold any character). The key is HMAC-SHA256(TOLLGATE_LINK_SECRET, "tollgate upgrade link key v1"): the
// secret itself never leaves the sidecar, and the database holds only what mints links.
package upgrade

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/config"
)

// keyLabel is what the link key is derived from the secret with.
const keyLabel = "tollgate upgrade link key v1"

// MaxTokenLength bounds what Verify looks at: a customer key of 255 characters (up to 4 bytes each) and the
// rest fit well below it.
const MaxTokenLength = 2048

// Payload is what a token names.
type Payload struct {
	Customer string
	Feature  string
	// EventID is the limit_reached event the prompt answered; 0 = none.
	EventID int64
	// EmailID is the email the link was in; 0 = none (the app's 402).
	EmailID int64
	// Variant is the prompt variant; "" = no experiment.
	Variant string
	// Expires is when the link stops working (whole seconds).
	Expires time.Time
}

// Errors of Verify.
var (
	ErrMalformed = errors.New("upgrade link: not a token")
	ErrSignature = errors.New("upgrade link: the signature does not match (forged, tampered or signed with another secret)")
	ErrExpired   = errors.New("upgrade link: expired")
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// DeriveKey is the link key of a secret (TOLLGATE_LINK_SECRET).
func DeriveKey(secret string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(keyLabel))
	return mac.Sum(nil)
}

// Signer mints tokens with the current key and verifies them with the current or the previous one.
type Signer struct {
	key, previous []byte
}

// NewSigner returns the signer of TOLLGATE_LINK_SECRET (secret, required) and TOLLGATE_LINK_SECRET_PREVIOUS
// (previous, "" while no secret is being rotated out).
func NewSigner(secret, previous string) (*Signer, error) {
	if secret == "" {
		return nil, errors.New("upgrade link: TOLLGATE_LINK_SECRET is empty")
	}
	if len(secret) < 16 {
		return nil, errors.New("upgrade link: TOLLGATE_LINK_SECRET is shorter than 16 characters: use a long random value (openssl rand -hex 32)")
	}
	s := &Signer{key: DeriveKey(secret)}
	if previous != "" {
		s.previous = DeriveKey(previous)
	}
	return s, nil
}

// KeyHex is the current key as tollgate.configure_upgrade_links takes it.
func (s *Signer) KeyHex() string { return hex.EncodeToString(s.key) }

// Encode is the payload as it is signed.
func (p Payload) Encode() string {
	id := func(n int64) string {
		if n <= 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	return "1|" + strconv.FormatInt(p.Expires.Unix(), 10) + "|" + id(p.EventID) + "|" + id(p.EmailID) + "|" +
		p.Variant + "|" + p.Feature + "|" + p.Customer
}

func sign(key []byte, payload []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(payload)
	return mac.Sum(nil)
}

// b64 decodes strictly: a token whose last character differs only in the bits base64 leaves unused would
// otherwise decode to the same payload and signature, so one link would have many spellings (found by
// FuzzVerify; its input is in testdata/fuzz).
var b64 = base64.RawURLEncoding.Strict()

// Mint returns the token of p, signed with the current key.
func (s *Signer) Mint(p Payload) string {
	payload := []byte(p.Encode())
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(sign(s.key, payload))
}

// Verify checks a token's signature (the current key, then the previous one) and expiry at now, and returns what
// it names and its signature (hex: one link's clicks share it). Errors: ErrMalformed, ErrSignature, ErrExpired.
func (s *Signer) Verify(token string, now time.Time) (Payload, string, error) {
	if len(token) > MaxTokenLength {
		return Payload{}, "", ErrMalformed
	}
	encPayload, encMAC, ok := strings.Cut(token, ".")
	if !ok {
		return Payload{}, "", ErrMalformed
	}
	payload, err1 := b64.DecodeString(encPayload)
	mac, err2 := b64.DecodeString(encMAC)
	if err1 != nil || err2 != nil || len(mac) != sha256.Size {
		return Payload{}, "", ErrMalformed
	}
	if !hmac.Equal(mac, sign(s.key, payload)) && (s.previous == nil || !hmac.Equal(mac, sign(s.previous, payload))) {
		return Payload{}, "", ErrSignature
	}
	p, err := parse(string(payload))
	if err != nil {
		return Payload{}, "", err // signed by us, yet not ours: a key shared with something else
	}
	if !now.Before(p.Expires) {
		return p, "", ErrExpired
	}
	return p, hex.EncodeToString(mac), nil
}

func parse(payload string) (Payload, error) {
	parts := strings.SplitN(payload, "|", 7)
	if len(parts) != 7 || parts[0] != "1" {
		return Payload{}, fmt.Errorf("%w: unknown payload version", ErrMalformed)
	}
	var p Payload
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || exp <= 0 {
		return Payload{}, fmt.Errorf("%w: bad expiry", ErrMalformed)
	}
	p.Expires = time.Unix(exp, 0).UTC()
	for i, dst := range []*int64{&p.EventID, &p.EmailID} {
		if v := parts[2+i]; v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return Payload{}, fmt.Errorf("%w: bad id", ErrMalformed)
			}
			*dst = n
		}
	}
	p.Variant, p.Feature, p.Customer = parts[4], parts[5], parts[6]
	if (p.Variant != "" && !nameRE.MatchString(p.Variant)) || !nameRE.MatchString(p.Feature) ||
		p.Customer == "" || !utf8.ValidString(p.Customer) || utf8.RuneCountInString(p.Customer) > 255 {
		return Payload{}, fmt.Errorf("%w: bad names", ErrMalformed)
	}
	return p, nil
}

// URL is the link of a token under the sidecar's public URL.
func URL(baseURL, token string) string { return strings.TrimRight(baseURL, "/") + "/upgrade/" + token }

// SignerFromConfig is the signer of TOLLGATE_LINK_SECRET (and _PREVIOUS) when links are on: the secret and
// upgrade_links.public_url are both set. It is nil when they are off.
func SignerFromConfig(cfg *config.Config, env config.Env) (*Signer, error) {
	if env.LinkSecret == "" || !cfg.UpgradeLinks.Enabled() {
		return nil, nil
	}
	if env.LinkSecretPrevious == env.LinkSecret {
		return nil, errors.New("TOLLGATE_LINK_SECRET_PREVIOUS is the same as TOLLGATE_LINK_SECRET: unset it, or set it to the secret being rotated out")
	}
	return NewSigner(env.LinkSecret, env.LinkSecretPrevious)
}

// Minter mints links under the sidecar's public URL, valid for TTL from when they are minted.
type Minter struct {
	Signer  *Signer
	BaseURL string
	TTL     time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Link is the URL of a link for p (its Expires set from now).
func (m *Minter) Link(p Payload) string {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	p.Expires = now().Add(m.TTL).Truncate(time.Second)
	return URL(m.BaseURL, m.Signer.Mint(p))
}
