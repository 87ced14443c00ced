package mailer

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// pacer spaces sends at most rate per second across all senders of one mailer, and holds them all back when
// the provider asks for a pause (429 Retry-After).
type pacer struct {
	mu       sync.Mutex
	interval time.Duration // 0: no limit
	next     time.Time
}

func newPacer(perSecond float64) *pacer {
	p := &pacer{}
	if perSecond > 0 {
		p.interval = time.Duration(float64(time.Second) / perSecond)
	}
	return p
}

// wait takes the next slot, waiting for it.
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	return sleep(ctx, time.Until(at))
}

// pauseUntil keeps every slot before t empty.
func (p *pacer) pauseUntil(t time.Time) {
	p.mu.Lock()
	if p.next.Before(t) {
		p.next = t
	}
	p.mu.Unlock()
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff is exponential backoff with jitter: attempt n (from 1) waits between half and all of
// base * 2^(n-1), capped at max.
type backoff struct {
	base, max time.Duration
}

func (b backoff) delay(attempt int) time.Duration {
	d := b.base
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	if d > b.max {
		d = b.max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
