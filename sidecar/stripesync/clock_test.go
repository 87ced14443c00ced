package stripesync

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// FakeClock is a Clock whose time moves only when a test calls Advance. Tests wait for the client to arm
// timers (WaitTimers) instead of sleeping: every wait of the client is a timer here.
type FakeClock struct {
	// Auto lets waits of at most this long pass at once (the time moves on by them): a test then advances the
	// clock only for the long waits it is about.
	Auto time.Duration

	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	changed chan struct{} // closed, and replaced, whenever a timer is armed or fires
}

type fakeTimer struct {
	at time.Time
	d  time.Duration
	ch chan time.Time
}

// NewFakeClock starts at a fixed time.
func NewFakeClock() *FakeClock {
	return &FakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	if d <= c.Auto {
		c.now = c.now.Add(d)
		c.fire()
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), d: d, ch: ch})
	c.signal()
	return ch
}

// Advance moves the time forward by d and fires the timers that are due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fire()
}

// fire sends on the timers that are due; c.mu is held.
func (c *FakeClock) fire() {
	c.timers = slices.DeleteFunc(c.timers, func(t fakeTimer) bool {
		if !t.at.After(c.now) {
			t.ch <- c.now
			return true
		}
		return false
	})
	c.signal()
}

func (c *FakeClock) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Timers is the durations of the armed timers (as asked of After), in the order they were armed.
func (c *FakeClock) Timers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.d
	}
	return out
}

// WaitTimers waits until the armed timers satisfy ok (it is given their durations), failing the test after
// 20 seconds.
func (c *FakeClock) WaitTimers(t testing.TB, what string, ok func([]time.Duration) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		durs := make([]time.Duration, len(c.timers))
		for i, tm := range c.timers {
			durs[i] = tm.d
		}
		changed := c.changed
		c.mu.Unlock()
		if ok(durs) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timeout waiting for timers: %s (armed: %v)", what, durs)
		}
	}
}
