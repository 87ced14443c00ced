// Package pgserver runs a private PostgreSQL cluster as a child process: a throwaway one for tests and
// demos, or a persistent one in a given directory for `tollgate dev`.
//
// The cluster trusts local connections as the superuser postgres, listens on 127.0.0.1 and on a unix
// socket, and dies with the process that started it (Pdeathsig). Throwaway clusters live in a
// tollgate-pg-* directory under os.TempDir(); directories left behind by a process that died are swept
// by the next Start.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound is returned (wrapped) when no PostgreSQL server binaries can be found.
var ErrNotFound = errors.New("PostgreSQL server binaries not found: install Debian's postgresql package (apt-get install postgresql)")

const (
	tempPrefix    = "tollgate-pg-"
	ownerFile     = "owner.pid"
	superuser     = "postgres"
	readyTimeout  = 60 * time.Second
	stopTimeout   = 30 * time.Second
	startAttempts = 3
)

// Options configure Start. The zero value starts a throwaway cluster on a free port.
type Options struct {
	// Dir is a persistent data directory, initialised on first use and kept by Stop. Empty means a
	// temporary directory removed by Stop.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Settings are extra server settings passed as -c name=value. For throwaway clusters they are
	// applied over the defaults fsync=off, full_page_writes=off, max_connections=300 and
	// max_wal_size=256MB (bounds the WAL a tmpfs holds).
	Settings map[string]string
	// TempRoot is where a throwaway cluster's directory is created. Empty means /dev/shm when it is
	// a tmpfs with at least 1 GiB free (CREATE DATABASE there is an order of magnitude faster than on
	// a virtual disk), else os.TempDir(). A benchmark that measures durability should name a disk.
	TempRoot string
	// Logf, if set, receives progress lines (initdb, start, stop).
	Logf func(format string, args ...any)
}

// Server is a running cluster. Its methods are safe for concurrent use.
type Server struct {
	binDir   string
	root     string // temp root (owner.pid, postgres.log, data/, sock/), or the persistent data dir
	dataDir  string
	sockDir  string
	sockRoot string // a temp root (owner.pid, sock/) holding sockDir when the persistent dir is too deep for it
	port     int
	temp     bool
	logf     func(string, ...any)
	logPath  string
	pid      int
	done     chan struct{} // closed when the postmaster has exited
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// FindBinDir returns the directory holding initdb and postgres: the one of initdb found via PATH,
// else the highest-numbered /usr/lib/postgresql/<N>/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, dir := range matches {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", ErrNotFound
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start initialises (if needed) and starts a cluster, and returns once it accepts connections.
func Start(ctx context.Context, opts Options) (*Server, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{binDir: binDir, logf: opts.Logf}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	cred, err := childCredential()
	if err != nil {
		return nil, err
	}

	settings := map[string]string{}
	if opts.Dir == "" {
		sweepStale(s.logf)
		s.temp = true
		tempRoot := opts.TempRoot
		if tempRoot == "" {
			tempRoot = defaultTempRoot()
		}
		s.root, err = makeTempRoot(tempRoot, cred)
		if err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		s.dataDir = filepath.Join(s.root, "data")
		s.sockDir = filepath.Join(s.root, "sock")
		s.logPath = filepath.Join(s.root, "postgres.log")
		for _, dir := range []string{s.dataDir, s.sockDir} {
			if err := makeServerDir(dir, cred); err != nil {
				os.RemoveAll(s.root)
				return nil, fmt.Errorf("pgserver: %w", err)
			}
		}
		settings["fsync"] = "off"
		settings["full_page_writes"] = "off"
		settings["max_connections"] = "300"
		settings["max_wal_size"] = "256MB"
	} else {
		s.root, err = filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		if err := os.MkdirAll(s.root, 0o700); err != nil {
			return nil, fmt.Errorf("pgserver: %w", err)
		}
		s.dataDir = s.root
		s.sockDir = s.root
		s.logPath = filepath.Join(s.root, "postgres.log")
		// A unix socket path has at most 107 bytes; a deep data directory gets a short socket
		// directory of its own (swept like a throwaway cluster if this process dies).
		if len(s.root)+len("/.s.PGSQL.65535.lock") > 100 {
			if s.sockRoot, err = makeTempRoot(os.TempDir(), cred); err != nil {
				return nil, fmt.Errorf("pgserver: %w", err)
			}
			s.sockDir = filepath.Join(s.sockRoot, "sock")
			if err := makeServerDir(s.sockDir, cred); err != nil {
				os.RemoveAll(s.sockRoot)
				return nil, fmt.Errorf("pgserver: %w", err)
			}
		}
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}

	fail := func(err error) (*Server, error) {
		s.removeDirs()
		return nil, err
	}
	if cred != nil && !s.temp {
		if err := chownTree(s.root, cred); err != nil {
			return fail(fmt.Errorf("pgserver: %w", err))
		}
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "PG_VERSION")); err != nil {
		if err := s.initdb(ctx, cred); err != nil {
			return fail(err)
		}
	}

	port := opts.Port
	for attempt := 1; ; attempt++ {
		if opts.Port == 0 {
			if port, err = freePort(); err != nil {
				return fail(fmt.Errorf("pgserver: %w", err))
			}
		}
		err = s.start(ctx, cred, port, settings)
		if err == nil {
			break
		}
		// A free port can be taken between freePort and the bind: try another one.
		if opts.Port != 0 || attempt == startAttempts || !errors.Is(err, errPortInUse) {
			return fail(err)
		}
	}
	s.logf("pgserver: PostgreSQL %s listening on 127.0.0.1:%d (data %s)", filepath.Base(filepath.Dir(binDir)), s.port, s.dataDir)
	return s, nil
}

// childCredential returns the postgres OS user's credential when running as root (initdb and
// postgres refuse to run as root), else nil.
func childCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(superuser)
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root needs the %q OS user to run the server (Debian's postgresql package creates it): %w", superuser, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeTempRoot creates a tollgate-pg-* directory in parent with this process's owner file. It is owned by
// this process's user and writable by nobody else, which is what sweepStale checks before it trusts one: as
// root, only the data and socket directories in it are the server's (makeServerDir), and the root is 0711 so
// that the server can reach them.
func makeTempRoot(parent string, cred *syscall.Credential) (string, error) {
	root, err := os.MkdirTemp(parent, tempPrefix+"*")
	if err != nil {
		return "", err
	}
	if err := writeOwner(root); err != nil {
		os.RemoveAll(root)
		return "", err
	}
	if cred != nil {
		if err := os.Chmod(root, 0o711); err != nil {
			os.RemoveAll(root)
			return "", err
		}
	}
	return root, nil
}

// makeServerDir creates a directory for the server in a temp root, owned by the server's user.
func makeServerDir(dir string, cred *syscall.Credential) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(dir, int(cred.Uid), int(cred.Gid))
	}
	return nil
}

func chownTree(root string, cred *syscall.Credential) error {
	return filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}

func (s *Server) command(ctx context.Context, cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.root
	cmd.Env = append(filteredEnv(), "LC_ALL=C")
	if cred != nil {
		// Run as the postgres OS user, with its home: libpq in the server (an extension connecting to
		// other servers, such as Citus) reads ~/.postgresql, which root's home would deny it.
		if u, err := user.LookupId(strconv.FormatUint(uint64(cred.Uid), 10)); err == nil && u.HomeDir != "" {
			cmd.Env = append(slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") }),
				"HOME="+u.HomeDir)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

// filteredEnv drops PG* variables so that the caller's environment cannot redirect the server.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Server) initdb(ctx context.Context, cred *syscall.Credential) error {
	var lastErr error
	for _, locale := range []string{"C.UTF-8", "C"} {
		s.logf("pgserver: initdb %s (locale %s)", s.dataDir, locale)
		cmd := s.command(ctx, cred, "initdb", "-D", s.dataDir, "-U", superuser, "--auth=trust",
			"-E", "UTF8", "--locale="+locale, "--no-sync", "--no-instructions")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		lastErr = fmt.Errorf("pgserver: initdb failed: %w\n%s", err, bytes.TrimSpace(out))
		// initdb removes what it created on failure; a retry starts from a clean directory.
		if ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

var errPortInUse = errors.New("port in use")

// start launches the postmaster from a goroutine locked to its OS thread: Pdeathsig fires when the
// thread that forked the child exits, so that thread must live as long as the child. It does, since
// the same goroutine then waits for the child.
func (s *Server) start(ctx context.Context, cred *syscall.Credential, port int, settings map[string]string) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	logOffset, _ := logFile.Seek(0, 2)

	args := []string{"-D", s.dataDir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + s.sockDir}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	// Not CommandContext: the server must outlive Start's context.
	cmd := s.command(context.Background(), cred, "postgres", args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile

	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread is discarded when this goroutine ends, after the child has exited.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(done)
	}()
	err = <-started
	logFile.Close()
	if err != nil {
		return fmt.Errorf("pgserver: starting postgres: %w", err)
	}
	s.pid, s.port, s.done = cmd.Process.Pid, port, done

	if err := s.waitReady(ctx); err != nil {
		s.kill()
		log := s.logSince(logOffset)
		if strings.Contains(log, "could not bind") || strings.Contains(log, "Address already in use") {
			return fmt.Errorf("pgserver: %w: %d", errPortInUse, port)
		}
		return fmt.Errorf("pgserver: %w\n%s", err, log)
	}
	return nil
}

// waitReady connects until the server accepts a connection, the postmaster exits, or the deadline.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		attemptCtx, attemptCancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(attemptCtx, s.SocketURL("postgres"))
		attemptCancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited during startup: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w (last error: %v)", ctx.Err(), err)
		case <-ticker.C:
		}
	}
}

func (s *Server) logSince(offset int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return strings.TrimSpace(string(b[offset:]))
}

// kill stops the postmaster immediately and waits for it.
func (s *Server) kill() {
	syscall.Kill(s.pid, syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		syscall.Kill(s.pid, syscall.SIGKILL)
		<-s.done
	}
}

// Stop shuts the server down (fast shutdown: sessions are terminated) and, for a throwaway cluster,
// removes its directory. Stop is idempotent.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.logf("pgserver: stopping postgres (pid %d)", s.pid)
		if err := syscall.Kill(s.pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.stopErr = fmt.Errorf("pgserver: signal postgres: %w", err)
		}
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			s.stopErr = fmt.Errorf("pgserver: postgres did not stop within %s; killed it", stopTimeout)
			s.kill()
		}
		if err := s.removeDirs(); err != nil && s.stopErr == nil {
			s.stopErr = fmt.Errorf("pgserver: %w", err)
		}
	})
	return s.stopErr
}

// removeDirs removes what Start created for this run: a throwaway cluster's directory, a socket
// directory.
func (s *Server) removeDirs() error {
	var err error
	if s.temp {
		err = os.RemoveAll(s.root)
	}
	if s.sockRoot != "" {
		if err2 := os.RemoveAll(s.sockRoot); err == nil {
			err = err2
		}
	}
	return err
}

// Done is closed when the postmaster has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// PID is the postmaster's process id.
func (s *Server) PID() int { return s.pid }

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// BinDir is the directory of the server binaries; pg_dump and psql of the same version live there too.
func (s *Server) BinDir() string { return s.binDir }

// Bin returns the path of a PostgreSQL program (pg_dump, psql, ...) of the server's version.
func (s *Server) Bin(name string) string { return filepath.Join(s.binDir, name) }

// URL is a connection URL over TCP for the superuser postgres and the given database.
func (s *Server) URL(dbname string) string {
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path: "/" + dbname, RawQuery: "sslmode=disable"}
	return u.String()
}

// SocketURL is a connection URL over the unix socket for the superuser postgres and the given database.
func (s *Server) SocketURL(dbname string) string {
	q := url.Values{"host": {s.sockDir}, "port": {strconv.Itoa(s.port)}, "sslmode": {"disable"}}
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Path: "/" + dbname, RawQuery: q.Encode()}
	return u.String()
}

const shmDir = "/dev/shm"

// defaultTempRoot prefers /dev/shm when it is a roomy tmpfs.
func defaultTempRoot() string {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(shmDir, &st); err == nil && st.Type == tmpfsMagic &&
		st.Bavail*uint64(st.Bsize) >= 1<<30 && syscall.Access(shmDir, 2 /* W_OK */) == nil {
		return shmDir
	}
	return os.TempDir()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
