package stripesync

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Each free slot goes to a waiting webhook request before any background request; background requests resume
// once no webhook request waits.
func TestSchedulerGivesSlotsToWebhooksFirst(t *testing.T) {
	t.Parallel()
	clock := NewFakeClock()
	s := newScheduler(clock, 100*time.Millisecond)
	ctx := context.Background()
	require.NoError(t, s.acquire(ctx, prioBackground)) // a reconcile page takes the slot at T0

	order := make(chan string, 3)
	go func() { require.NoError(t, s.acquire(ctx, prioBackground)); order <- "reconcile" }()
	clock.WaitTimers(t, "reconcile waits for the next slot", func(d []time.Duration) bool { return len(d) == 1 })
	go func() { require.NoError(t, s.acquire(ctx, prioWebhook)); order <- "webhook" }()
	go func() { require.NoError(t, s.acquire(ctx, prioWebhook)); order <- "webhook" }()
	clock.WaitTimers(t, "two webhooks wait too", func(d []time.Duration) bool { return len(d) == 3 })

	clock.Advance(100 * time.Millisecond)
	require.Equal(t, "webhook", <-order)
	// the other webhook waits for the next slot; reconcile waits for it, with no timer of its own
	clock.WaitTimers(t, "the second webhook's turn", func(d []time.Duration) bool { return len(d) == 1 })
	clock.Advance(100 * time.Millisecond)
	require.Equal(t, "webhook", <-order)
	clock.WaitTimers(t, "reconcile's turn", func(d []time.Duration) bool { return len(d) == 1 })
	select {
	case o := <-order:
		t.Fatalf("%s went before its slot", o)
	default:
	}
	clock.Advance(100 * time.Millisecond)
	require.Equal(t, "reconcile", <-order)
}

// A 429's pause holds background requests only.
func TestSchedulerPausesBackgroundAlone(t *testing.T) {
	t.Parallel()
	clock := NewFakeClock()
	s := newScheduler(clock, time.Millisecond)
	ctx := context.Background()
	s.pauseBackground(30 * time.Second)
	done := make(chan struct{})
	go func() { require.NoError(t, s.acquire(ctx, prioBackground)); close(done) }()
	clock.WaitTimers(t, "reconcile waits out the 429", func(d []time.Duration) bool { return len(d) == 1 && d[0] == 30*time.Second })
	require.NoError(t, s.acquire(ctx, prioWebhook), "a webhook request goes at once")
	s.pauseBackground(time.Second) // a shorter pause never shortens a longer one
	clock.Advance(29 * time.Second)
	select {
	case <-done:
		t.Fatal("reconcile went before the pause ended")
	default:
	}
	clock.WaitTimers(t, "reconcile still waits", func(d []time.Duration) bool { return len(d) == 1 })
	clock.Advance(time.Second)
	<-done

	// a request whose context ends stops waiting, and no longer holds background requests back
	s = newScheduler(clock, 100*time.Millisecond)
	cctx, cancel := context.WithCancel(ctx)
	require.NoError(t, s.acquire(ctx, prioWebhook))
	errs := make(chan error)
	go func() { errs <- s.acquire(cctx, prioWebhook) }()
	clock.WaitTimers(t, "the webhook waits its turn", func(d []time.Duration) bool { return len(d) == 1 })
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	s.mu.Lock()
	require.Zero(t, s.waiting)
	s.mu.Unlock()
}
