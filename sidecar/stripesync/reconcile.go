package stripesync

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/config"
)

// ErrLocked says another session (another replica, or a `tollgate sync`) is reconciling right now.
var ErrLocked = errors.New("another reconcile is running")

// Progress is reported after each page of a reconcile run.
type Progress struct {
	// Done is the number of subscriptions stored so far, in Pages pages.
	Done  int
	Pages int
	// Expected is what the last complete run stored (0 = no run yet): an estimate for a progress bar.
	Expected int
	Elapsed  time.Duration
	// Finished is set on the last report of a run that listed every subscription.
	Finished bool
}

// Result is what a reconcile run did.
type Result struct {
	Run           int64
	Subscriptions int
	Pages         int
	Duration      time.Duration
}

// Reconcile lists every subscription in Stripe (status=all, page by page, within the client's rate limit) and
// stores each, so plans converge whatever webhooks were missed. One run at a time across replicas: when another
// session holds the reconcile lock it returns ErrLocked at once. progress (may be nil) is called after each
// page. Pages stored before an error stay stored.
func (s *Syncer) Reconcile(ctx context.Context, progress func(Progress)) (Result, error) {
	var res Result
	start := time.Now()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	// the advisory lock lives in this connection's session: it is released when the run finishes, or when the
	// connection is closed (below, if finishing fails; or by the server, if this process dies)
	var run *int64
	var expected *int32
	if err := conn.QueryRow(ctx, `SELECT subscriptions FROM tollgate.last_sync_run()`).Scan(&expected); err != nil {
		conn.Release()
		return res, fmt.Errorf("reconcile: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT tollgate.start_sync_run()`).Scan(&run); err != nil {
		conn.Release()
		return res, fmt.Errorf("reconcile: %w", err)
	}
	if run == nil {
		conn.Release()
		s.m.runs.With("locked").Inc()
		return res, ErrLocked
	}
	res.Run = *run
	log := s.log.With("run", res.Run)
	log.Info("stripe reconcile started")

	listErr := s.client.ListSubscriptions(ctx, s.opt.PageSize, func(p Page) error {
		var stored []Stored
		err := inTx(ctx, conn, func(tx pgx.Tx) error {
			var err error
			stored, err = storeSubscriptions(ctx, tx, p.Subscriptions, p.FetchedAt)
			return err
		})
		if err != nil {
			return err
		}
		for i, st := range stored {
			s.noteStored(p.Subscriptions[i], st)
		}
		res.Subscriptions += len(p.Subscriptions)
		res.Pages++
		s.m.runSubscriptions.With().Add(float64(len(p.Subscriptions)))
		if progress != nil {
			progress(Progress{Done: res.Subscriptions, Pages: res.Pages, Expected: int(deref32(expected)),
				Elapsed: time.Since(start), Finished: !p.HasMore})
		}
		return nil
	})
	res.Duration = time.Since(start)

	var errText *string
	if listErr != nil {
		// what Stripe said, without secrets, within what finish_sync_run stores
		msg := truncate(config.Redact(listErr.Error()), 2000)
		errText = &msg
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(fctx, `SELECT tollgate.finish_sync_run($1, $2, $3)`, res.Run, res.Subscriptions, errText); err != nil {
		// never put a connection that may still hold the lock back into the pool
		_ = conn.Hijack().Close(fctx)
		if listErr == nil {
			listErr = fmt.Errorf("reconcile: finish run %d: %w", res.Run, err)
		}
	} else {
		conn.Release()
	}
	if listErr != nil {
		s.m.runs.With("error").Inc()
		log.Error("stripe reconcile stopped early", "subscriptions", res.Subscriptions, "pages", res.Pages,
			"duration", res.Duration, "err", redacted(listErr))
		return res, fmt.Errorf("reconcile: %w", listErr)
	}
	s.m.runs.With("ok").Inc()
	s.m.runDuration.With().Observe(res.Duration.Seconds())
	s.m.lastSuccess.With().Set(float64(time.Now().Unix()))
	log.Info("stripe reconcile finished", "subscriptions", res.Subscriptions, "pages", res.Pages, "duration", res.Duration)
	return res, nil
}

func deref32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// Reconciler is the sidecar component that reconciles at start and then every interval.
type Reconciler struct {
	s       *Syncer
	authErr atomic.Pointer[error] // the last run failed because Stripe refused the key
}

// Reconciler returns the component that runs Reconcile at start and every ReconcileInterval.
func (s *Syncer) Reconciler() *Reconciler { return &Reconciler{s: s} }

// Name is "stripe-reconcile".
func (r *Reconciler) Name() string { return "stripe-reconcile" }

// Run reconciles until ctx ends. A run that fails is logged and retried at the next interval; a run that another
// replica holds the lock for is skipped. It returns nil when ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		res, err := r.s.Reconcile(ctx, nil)
		if errors.Is(err, ErrLocked) {
			r.s.log.Debug("stripe reconcile skipped: another replica is reconciling")
		}
		if IsAuthError(err) {
			r.authErr.Store(&err)
		} else if err == nil {
			r.authErr.Store(nil)
		}
		if r.s.opt.OnReconcile != nil {
			r.s.opt.OnReconcile(res, err)
		}
		t := time.NewTimer(r.s.opt.ReconcileInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Ready fails while the last reconcile failed because Stripe refused STRIPE_SECRET_KEY (401 or 403): the
// replica could not re-fetch anything a webhook names either. Other failures (Stripe down, rate limits) are
// transient and leave it ready.
func (r *Reconciler) Ready(context.Context) error {
	if err := r.authErr.Load(); err != nil {
		return fmt.Errorf("stripe refuses STRIPE_SECRET_KEY: %w", *err)
	}
	return nil
}

// ResumeDue re-fetches the stored subscriptions whose paused collection was due to resume
// (pause_collection.resumes_at has passed) and stores what Stripe says now; a subscription Stripe no longer
// knows is stored as gone. Stripe resumes collection itself at resumes_at and sends customer.subscription.updated;
// this covers that event arriving late or never. The pause stops counting at resumes_at whatever Stripe says,
// so a customer whose subscription Stripe still shows paused keeps the plan. It returns how many it re-fetched.
func (s *Syncer) ResumeDue(ctx context.Context) (int, error) {
	ctx = Background(ctx)
	const batch = 100
	done := 0
	seen := map[objectRef]bool{}
	for {
		refs, err := dueResumes(ctx, s.pool, batch)
		if err != nil {
			return done, fmt.Errorf("paused collections due: %w", err)
		}
		fresh := 0
		for _, ref := range refs {
			if seen[ref] {
				continue // Stripe still shows it paused: once per call
			}
			seen[ref] = true
			fresh++
			at := time.Now()
			sub, err := s.client.Subscription(ctx, ref.Account, ref.ID)
			var st Stored
			switch {
			case IsNotFound(err):
				st, err = storeGone(ctx, s.pool, ref.ID, at)
			case err == nil:
				st, err = storeSubscription(ctx, s.pool, sub, at)
				if err == nil {
					s.noteStored(sub, st)
				}
			}
			if err != nil {
				return done, fmt.Errorf("resume %s: %w", ref.ID, err)
			}
			done++
			s.m.resumes.With().Inc()
		}
		if len(refs) < batch || fresh == 0 {
			return done, nil
		}
	}
}

// Resumer is the sidecar component that runs ResumeDue every ResumeInterval.
type Resumer struct{ s *Syncer }

// Resumer returns the component that re-fetches subscriptions whose paused collection is due to resume.
func (s *Syncer) Resumer() *Resumer { return &Resumer{s: s} }

// Name is "stripe-resume".
func (r *Resumer) Name() string { return "stripe-resume" }

// Run calls ResumeDue at start and every ResumeInterval until ctx ends; failures are logged and retried at the
// next interval. It returns nil when ctx ends.
func (r *Resumer) Run(ctx context.Context) error {
	for {
		if n, err := r.s.ResumeDue(ctx); err != nil && ctx.Err() == nil {
			r.s.log.Warn("re-fetching paused subscriptions due to resume failed; retrying later", "err", redacted(err))
		} else if n > 0 {
			r.s.log.Info("re-fetched paused subscriptions due to resume", "subscriptions", n)
		}
		t := time.NewTimer(r.s.opt.ResumeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Ready is always nil: the Reconciler reports a refused key.
func (r *Resumer) Ready(context.Context) error { return nil }
