package stripesync

import (
	"context"
	"sync"
	"time"
)

// fetches coalesces concurrent re-fetches of one Stripe object, so that duplicated or simultaneous events
// spend one request of the rate budget, not one each, without ever handing an event an answer that may predate
// it:
//
//   - A webhook joins the fetch of its object before it looks up its event id, and leaves it once its
//     transaction has ended. Deliveries of one event share one fetch, whenever it started: the event existed
//     before its first delivery arrived, so the fetch made for that delivery saw it.
//   - Another event joins a fetch that has not started yet (it will start after the event arrived). Once that
//     fetch runs, later events wait for it to end and share the next one: at most one fetch of an object is in
//     flight.
type fetches struct {
	mu       sync.Mutex
	latest   map[string]*flight // by object key: the newest fetch
	onShared func()             // a webhook joined a fetch another one started (a metric)
}

// flight is one fetch of an object and the webhooks that share it.
type flight struct {
	key     string
	prev    *flight // the fetch before it, which it waits for
	events  map[string]bool
	refs    int
	claimed bool // a participant runs it
	started bool
	done    chan struct{}

	at  time.Time // when the fetch started (after prev ended): sync_subscription's fetched_at
	val any
	err error
}

func newFetches(onShared func()) *fetches {
	return &fetches{latest: map[string]*flight{}, onShared: onShared}
}

// join registers event's interest in a fetch of the object key and returns the fetch it will share. Call
// release with it when done.
func (f *fetches) join(key, event string) *flight {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.latest[key]; fl != nil && (fl.events[event] || !fl.started) {
		fl.events[event] = true
		fl.refs++
		if f.onShared != nil {
			f.onShared()
		}
		return fl
	}
	fl := &flight{key: key, prev: f.latest[key], events: map[string]bool{event: true}, refs: 1, done: make(chan struct{})}
	f.latest[key] = fl
	return fl
}

// result returns what the fetch got and when it started. The first participant to ask runs fetch (after the
// previous fetch of the object ended); the others wait for it.
func (f *fetches) result(ctx context.Context, fl *flight, fetch func(context.Context) (any, error)) (any, time.Time, error) {
	f.mu.Lock()
	run := !fl.claimed
	fl.claimed = true
	f.mu.Unlock()
	if run {
		var err error
		if prev := fl.prev; prev != nil {
			select {
			case <-prev.done:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		f.mu.Lock()
		fl.started, fl.at, fl.prev = true, time.Now(), nil
		f.mu.Unlock()
		if err == nil {
			fl.val, fl.err = fetch(ctx)
		} else {
			fl.err = err
		}
		close(fl.done)
	}
	select {
	case <-fl.done:
		return fl.val, fl.at, fl.err
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

// release ends a participant's share of fl.
func (f *fetches) release(fl *flight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.refs--
	if fl.refs == 0 && f.latest[fl.key] == fl {
		delete(f.latest, fl.key)
	}
}
