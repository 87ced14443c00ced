package stripesync

import (
	"context"
	"sync"
	"time"
)

// priority orders the Stripe requests of one client.
type priority int

const (
	prioWebhook    priority = iota // a webhook re-fetch: someone waits for the answer
	prioBackground                 // reconcile, resumes: nobody waits
)

// scheduler spaces the starts of a client's requests at least interval apart (a token bucket of one), gives
// each free slot to a waiting webhook request before any background request, and holds background requests
// alone after a 429.
type scheduler struct {
	clock    Clock
	interval time.Duration

	mu      sync.Mutex
	next    time.Time     // the earliest start of the next request
	waiting int           // webhook requests waiting for a slot
	bgUntil time.Time     // background requests wait until then (a 429's Retry-After)
	changed chan struct{} // closed, and replaced, when waiting drops to 0
}

func newScheduler(clock Clock, interval time.Duration) *scheduler {
	return &scheduler{clock: clock, interval: interval, changed: make(chan struct{})}
}

// acquire waits for the turn of a request of priority p; it returns ctx's error when ctx ends first.
func (s *scheduler) acquire(ctx context.Context, p priority) error {
	s.mu.Lock()
	if p == prioWebhook {
		s.waiting++
	}
	for {
		now := s.clock.Now()
		wait, blocked := time.Duration(0), false
		switch {
		case p == prioBackground && s.waiting > 0:
			blocked = true // until no webhook request waits
		case p == prioBackground && now.Before(s.bgUntil):
			wait = s.bgUntil.Sub(now)
		case now.Before(s.next):
			wait = s.next.Sub(now)
		default:
			s.next = now.Add(s.interval)
			if p == prioWebhook {
				s.doneWaiting()
			}
			s.mu.Unlock()
			return nil
		}
		// a blocked request waits for the webhooks to be served; the others for their time
		var changed <-chan struct{}
		var timer <-chan time.Time
		if blocked {
			changed = s.changed
		}
		s.mu.Unlock()
		if !blocked {
			timer = s.clock.After(wait)
		}
		select {
		case <-ctx.Done():
			if p == prioWebhook {
				s.mu.Lock()
				s.doneWaiting()
				s.mu.Unlock()
			}
			return ctx.Err()
		case <-changed:
		case <-timer:
		}
		s.mu.Lock()
	}
}

// doneWaiting counts a webhook request that stopped waiting; s.mu is held.
func (s *scheduler) doneWaiting() {
	s.waiting--
	if s.waiting == 0 {
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// pauseBackground holds background requests for d from now (never shortening a pause).
func (s *scheduler) pauseBackground(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until := s.clock.Now().Add(d); until.After(s.bgUntil) {
		s.bgUntil = until
	}
}
