package mailer

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// LogProvider prints each email instead of sending it: the default for development. Printing twice is
// harmless, so it counts as idempotent.
type LogProvider struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLogProvider prints to w.
func NewLogProvider(w io.Writer) *LogProvider { return &LogProvider{w: w} }

func (p *LogProvider) Name() string     { return "log" }
func (p *LogProvider) Idempotent() bool { return true }

func (p *LogProvider) Send(_ context.Context, msg *Message) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := fmt.Fprint(p.w, FormatMessage(msg))
	if err != nil {
		return "", retryable(fmt.Errorf("log: %w", err))
	}
	return msg.MessageID, nil
}

// FormatMessage is the text the log provider prints and `tollgate preview-email` shows.
func FormatMessage(msg *Message) string {
	return fmt.Sprintf("--- email %d\nMessage-ID: %s\nIdempotency-Key: %s\nFrom: %s\nTo: %s\nSubject: %s\n\n%s\n--- html\n%s\n--- end of email %d\n",
		msg.ID, msg.MessageID, msg.IdempotencyKey, msg.From, msg.To, msg.Subject, msg.Text, msg.HTML, msg.ID)
}
