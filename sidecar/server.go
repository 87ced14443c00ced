// Package sidecar is the tollgate daemon (`tollgate serve`): one HTTP server and the long-running components
// that plug into it (the Stripe sync's reconciler, the upgrade-prompt mailer, ...).
//
// The server owns the routes every deployment needs: /healthz (the process is up), /readyz (the database is
// reachable, its migrations are current and every component is ready) and /metrics (Prometheus). Components
// add their own routes with Handle and run under Add:
//
//	srv := sidecar.New(cfg, pool, logger, registry)
//	srv.Handle("POST /webhooks/stripe", syncer)
//	srv.Add(syncer.Reconciler())
//	err := srv.Run(ctx) // until ctx ends (SIGTERM), then a graceful shutdown
//
// Run serves two addresses: sidecar.listen, where Stripe and the operator's browser come (/healthz, the
// webhook, the funnel page: every route added with Handle), and sidecar.metrics_listen (by default on
// loopback only), where monitoring comes (/metrics, /readyz, /healthz). MetricsToken, when set, is the bearer
// token /metrics and /readyz require wherever they are served. docs/security.md says what is exposed where.
package sidecar

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/metrics"
	"github.com/tollgate/tollgate/internal/schema"
)

// Component is a long-running part of the sidecar.
type Component interface {
	// Name identifies the component in logs and in /readyz ("stripe-reconcile", "mailer").
	Name() string
	// Run works until ctx ends, then finishes the work in hand and returns nil. An error stops the whole
	// sidecar (a supervisor restarts it), so a component retries what is transient itself.
	Run(ctx context.Context) error
	// Ready says whether the component can do its work now; /readyz fails while any component is not ready.
	Ready(ctx context.Context) error
}

// Defaults of the server's timeouts.
const (
	DefaultShutdownTimeout = 30 * time.Second
	DefaultReadyTimeout    = 2 * time.Second
)

// Server is the sidecar's HTTP server and the components it runs.
type Server struct {
	cfg     *config.Config
	pool    *pgxpool.Pool
	log     *slog.Logger
	reg     *metrics.Registry
	mux     *http.ServeMux // every route
	public  *http.ServeMux // sidecar.listen: /healthz and the routes of Handle
	private *http.ServeMux // sidecar.metrics_listen: /metrics, /readyz, /healthz

	// ShutdownTimeout bounds a graceful shutdown: in-flight requests and components' work in hand.
	ShutdownTimeout time.Duration
	// ReadyTimeout bounds each check of /readyz.
	ReadyTimeout time.Duration
	// MetricsToken, when not empty, is the bearer token (Authorization: Bearer TOKEN) that /metrics and /readyz
	// require (TOLLGATE_METRICS_TOKEN). Set it before Run.
	MetricsToken string

	mu         sync.Mutex
	components []Component
	started    bool

	requests *metrics.CounterVec
	duration *metrics.HistogramVec
}

// New returns a server for cfg (its sidecar.listen), with the database pool, a logger (JSON in production) and
// the registry /metrics serves. Nil logger or registry get a discarding logger and a new registry.
func New(cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger, reg *metrics.Registry) *Server {
	if cfg == nil {
		cfg = config.Defaults()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	s := &Server{
		cfg: cfg, pool: pool, log: log, reg: reg,
		mux: http.NewServeMux(), public: http.NewServeMux(), private: http.NewServeMux(),
		ShutdownTimeout: DefaultShutdownTimeout,
		ReadyTimeout:    DefaultReadyTimeout,
		requests: reg.Counter("tollgate_http_requests_total",
			"HTTP requests served by the sidecar, by route pattern and status code.", "route", "code"),
		duration: reg.Histogram("tollgate_http_request_duration_seconds",
			"Duration of the sidecar's HTTP requests, by route pattern.", nil, "route"),
	}
	for _, m := range []*http.ServeMux{s.mux, s.public, s.private} {
		m.HandleFunc("GET /healthz", s.healthz)
	}
	for _, m := range []*http.ServeMux{s.mux, s.private} {
		m.Handle("GET /readyz", s.protected(http.HandlerFunc(s.readyz)))
		m.Handle("GET /metrics", s.protected(reg.Handler()))
	}
	return s
}

// protected lets a request through when MetricsToken is empty or the request carries it as a bearer token.
func (s *Server) protected(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.MetricsToken != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.MetricsToken)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
				http.Error(w, "unauthorized: send Authorization: Bearer $TOLLGATE_METRICS_TOKEN", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Config, Pool, Logger and Metrics give components what the server was built with.
func (s *Server) Config() *config.Config { return s.cfg }

// Pool is the database pool.
func (s *Server) Pool() *pgxpool.Pool { return s.pool }

// Logger is the structured logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Metrics is the registry /metrics serves.
func (s *Server) Metrics() *metrics.Registry { return s.reg }

// Handle adds a route of sidecar.listen, with http.ServeMux patterns ("POST /webhooks/stripe", "GET /{$}"). It
// panics when the pattern conflicts with another, as ServeMux does.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.public.Handle(pattern, h)
}

// Add adds a component; it runs from Run on. It panics once the server runs.
func (s *Server) Add(c Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("sidecar: Add after Run: " + c.Name())
	}
	s.components = append(s.components, c)
}

// Handler is every route, with request metrics and logs (for tests with httptest, and Serve).
func (s *Server) Handler() http.Handler { return s.instrument(s.mux) }

// PublicHandler is the routes of sidecar.listen: /healthz and those added with Handle.
func (s *Server) PublicHandler() http.Handler { return s.instrument(s.public) }

// MetricsHandler is the routes of sidecar.metrics_listen: /metrics, /readyz and /healthz.
func (s *Server) MetricsHandler() http.Handler { return s.instrument(s.private) }

func (s *Server) instrument(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r)
		route := r.Pattern // set by the mux on this request
		if route == "" {
			route = "unmatched"
		}
		s.requests.With(route, strconv.Itoa(rec.code)).Inc()
		s.duration.With(route).Observe(time.Since(start).Seconds())
		s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "route", route, "code", rec.code,
			"duration", time.Since(start))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.code, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Run listens on the configured addresses, sidecar.listen and sidecar.metrics_listen (one server for every
// route when they are the same), and serves until ctx ends; see ServeSplit.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Sidecar.Listen)
	if err != nil {
		return fmt.Errorf("sidecar: listen: %w", err)
	}
	if s.cfg.Sidecar.MetricsListen == "" || s.cfg.Sidecar.MetricsListen == s.cfg.Sidecar.Listen {
		return s.Serve(ctx, ln)
	}
	mln, err := net.Listen("tcp", s.cfg.Sidecar.MetricsListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("sidecar: listen on sidecar.metrics_listen: %w", err)
	}
	return s.ServeSplit(ctx, ln, mln)
}

// Serve serves every route on ln; see ServeSplit.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, []served{{ln, s.Handler(), "sidecar listening"}})
}

// ServeSplit serves the routes of sidecar.listen (PublicHandler) on ln and those of sidecar.metrics_listen
// (MetricsHandler) on metricsLn, and runs every component until ctx ends or a component fails, then shuts down
// gracefully: no new connections, in-flight requests finish, components' contexts end and they finish their
// work in hand, all within ShutdownTimeout. It returns nil after a clean shutdown on ctx's end.
func (s *Server) ServeSplit(ctx context.Context, ln, metricsLn net.Listener) error {
	return s.serve(ctx, []served{
		{ln, s.PublicHandler(), "sidecar listening"},
		{metricsLn, s.MetricsHandler(), "sidecar listening for /metrics and /readyz"},
	})
}

// served is a listener and what it serves.
type served struct {
	ln      net.Listener
	handler http.Handler
	msg     string
}

func (s *Server) serve(ctx context.Context, listeners []served) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("sidecar: Serve called twice")
	}
	s.started = true
	components := slices.Clone(s.components)
	s.mu.Unlock()

	servers := make([]*http.Server, len(listeners))
	for i, l := range listeners {
		servers[i] = &http.Server{
			Handler:           l.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      time.Minute,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	// components outlive ctx by the shutdown: they are stopped after it ends, not by it
	compCtx, stopComponents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComponents()
	failed := make(chan error, len(components)+len(servers))
	var wg sync.WaitGroup
	for _, c := range components {
		wg.Go(func() {
			err := c.Run(compCtx)
			switch {
			case compCtx.Err() != nil:
				s.log.Info("component stopped", "component", c.Name())
			case err != nil:
				failed <- fmt.Errorf("component %s: %w", c.Name(), err)
			default:
				s.log.Warn("component returned early", "component", c.Name())
			}
		})
	}
	names := make([]string, len(components))
	for i, c := range components {
		names[i] = c.Name()
	}
	for i, l := range listeners {
		go func() {
			if err := servers[i].Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("sidecar: serve: %w", err)
			}
		}()
		s.log.Info(l.msg, "addr", l.ln.Addr().String(), "components", names)
	}

	var err error
	select {
	case <-ctx.Done():
		s.log.Info("sidecar shutting down: finishing in-flight work", "timeout", s.ShutdownTimeout)
	case err = <-failed:
		s.log.Error("sidecar stopping", "err", err)
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	stopComponents()
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		close(stopped)
	}()
	for _, srv := range servers {
		if herr := srv.Shutdown(sctx); herr != nil {
			err = errors.Join(err, fmt.Errorf("sidecar: shutdown: %w", herr))
		}
	}
	select {
	case <-stopped:
	case <-sctx.Done():
		err = errors.Join(err, errors.New("sidecar: components did not stop within the shutdown timeout"))
	}
	if err == nil {
		s.log.Info("sidecar stopped")
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when every check passes and 503 otherwise, with each check's result as JSON.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	type check struct {
		name string
		fn   func(context.Context) error
	}
	checks := []check{{"database", s.checkDatabase}}
	s.mu.Lock()
	for _, c := range s.components {
		checks = append(checks, check{c.Name(), c.Ready})
	}
	s.mu.Unlock()

	results := make(map[string]string, len(checks))
	ok := true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), s.ReadyTimeout)
			defer cancel()
			res := "ok"
			if err := c.fn(ctx); err != nil {
				res = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			results[c.name] = res
			ok = ok && res == "ok"
		})
	}
	wg.Wait()
	status, code := "ok", http.StatusOK
	if !ok {
		status, code = "unavailable", http.StatusServiceUnavailable
		s.log.Warn("not ready", "checks", results)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": results})
}

// checkDatabase: reachable, migrated to exactly the version this binary carries, with the code package
// (the SQL functions) this binary carries.
func (s *Server) checkDatabase(ctx context.Context) error {
	if s.pool == nil {
		return errors.New("no database")
	}
	have, err := schema.CurrentVersion(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	want, err := schema.LatestVersion()
	if err != nil {
		return err
	}
	switch {
	case have < want:
		return fmt.Errorf("migrations not current: database at version %d, this tollgate needs %d: run tollgate migrate", have, want)
	case have > want:
		return fmt.Errorf("database at version %d is newer than this tollgate (%d): upgrade tollgate", have, want)
	}
	installed, err := schema.InstalledCodeSHA256(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	code, err := schema.CodeSHA256()
	if err != nil {
		return err
	}
	if installed != code {
		return fmt.Errorf("code package not current: the database has sha256 %.12q, this tollgate carries %.12s: run tollgate migrate", installed, code)
	}
	return nil
}
