package mailer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// A mailer in a process of its own, so that a test can SIGKILL it at a chosen stage of an email: the test
// binary runs itself with childEnv set, and TestMain calls runChild instead of the tests.
const (
	childEnv      = "TOLLGATE_MAILER_TEST_CHILD" // the database URL (a member of tollgate_sidecar)
	childProvider = "TOLLGATE_MAILER_TEST_PROVIDER"
	childPause    = "TOLLGATE_MAILER_TEST_PAUSE" // a stage of Mailer.hook at which to stop for good
)

// runChild runs a mailer until its stdin closes. With childPause set, reaching that stage prints
// "paused STAGE ID" and blocks (on stdin) until the process is killed.
func runChild() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	pool, err := pgxpool.New(ctx, os.Getenv(childEnv))
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	var p Provider
	kind, url, _ := strings.Cut(os.Getenv(childProvider), " ")
	switch kind {
	case "resend":
		p, err = NewResendProvider("re_test_key", url, 5*time.Second)
	case "smtp":
		p, err = NewSMTPProvider(url, 5*time.Second)
	default:
		err = fmt.Errorf("%s: unknown provider %q", childProvider, kind)
	}
	if err != nil {
		return fail(err)
	}
	tpl, err := LoadTemplates("")
	if err != nil {
		return fail(err)
	}
	m, err := New(Options{
		Pool: pool, Provider: p, Templates: tpl, From: "Acme <billing@acme.test>", UpgradeURL: "https://acme.test/pricing",
		RatePerSecond: 1000, PollInterval: 100 * time.Millisecond, SendTimeout: 5 * time.Second, StaleClaim: time.Hour,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	})
	if err != nil {
		return fail(err)
	}
	if pause := os.Getenv(childPause); pause != "" {
		m.hook = func(stage string, id int64) {
			if stage != pause {
				return
			}
			fmt.Printf("paused %s %d\n", stage, id)
			io.Copy(io.Discard, os.Stdin)
			select {} // never go on: the test kills this process here
		}
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Println("started", m.Worker())
	if err := m.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
}

// startChild runs a mailer process on the database at url with provider ("resend URL" or "smtp URL"),
// pausing for good at stage pause ("" = never). It is stopped when the test ends.
func startChild(t *testing.T, url, provider, pause string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+url, childProvider+"="+provider, childPause+"="+pause)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = tWriter{t}
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-c.done
		}
	})
	require.True(t, strings.HasPrefix(c.next(t), "started "))
	return c
}

// next returns the child's next line of output.
func (c *child) next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		require.True(t, ok, "the child exited")
		return line
	case <-time.After(30 * time.Second):
		t.Fatal("the child said nothing for 30 s")
		return ""
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	<-c.done
}
