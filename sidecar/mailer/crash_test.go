package mailer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Acceptance: the sidecar is killed with SIGKILL between claiming an email and sending it, and restarted: the
// email goes out once. Also killed after the provider took the email but before it was marked sent: Resend
// gets the same email with the same idempotency key again and delivers nothing new; SMTP cannot tell a
// repeat, so the email is given up as "delivery unknown" rather than sent twice.
func TestKilledMailerSendsOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		provider string
		stage    string
		status   string
		requests int // Resend requests
	}{
		{"resend", "claimed", "sent", 1},
		{"smtp", "claimed", "sent", 0},
		{"resend", "handed-off", "sent", 2},
		{"smtp", "handed-off", "dead", 0},
	} {
		t.Run(tc.provider+" killed when "+tc.stage, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 1)
			var provider string
			var f *fakeResend
			var mp *mailpit
			if tc.provider == "resend" {
				f = newFakeResend(t)
				provider = "resend " + f.url
			} else {
				mp = startMailpit(t)
				provider = "smtp " + mp.smtpURL()
			}
			first := startChild(t, b.db.SidecarURL, provider, tc.stage)
			b.customer(t, "alice", "alice@example.test")
			b.hitLimit(t, "alice", 1)
			paused := first.next(t)
			first.kill(t)
			row := b.emails(t)[0]
			require.Equal(t, fmt.Sprintf("paused %s %d", tc.stage, row.ID), paused)
			require.Equal(t, "sending", row.Status)

			startChild(t, b.db.SidecarURL, provider, "")
			row = b.waitFinal(t, 1)[0]
			require.Equal(t, tc.status, row.Status, "last error: %v", row.LastError)
			require.Equal(t, 2, row.Attempts)
			if f != nil {
				requests, delivered := f.snapshot()
				require.Len(t, requests, tc.requests)
				require.Len(t, delivered, 1)
				for _, r := range requests {
					require.Equal(t, requests[0].Key, r.Key)
					require.Equal(t, requests[0].Body, r.Body)
				}
				require.Equal(t, delivered[0].ID, *row.ProviderID)
			} else {
				msgs := mp.messages(t)
				require.Len(t, msgs, 1, "no second message")
				if tc.status == "dead" {
					require.True(t, strings.HasPrefix(*row.LastError, "delivery unknown"), *row.LastError)
				} else {
					require.Equal(t, "<"+msgs[0].MessageID+">", *row.ProviderID)
				}
			}
		})
	}
}
