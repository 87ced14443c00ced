package stripetest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StripeMockBin finds stripe-mock: in the directory scripts/tools.sh builds into
// (${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/bin), then on PATH; "" when it is in neither.
func StripeMockBin() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "tollgate", "bin", "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	return ""
}

// StripeMock starts stripe-mock on free loopback ports and returns its base URL (for STRIPE_API_BASE); it is
// stopped when the test ends. Without the binary the test is skipped, except under CI (CI set), where it fails:
// scripts/tools.sh builds it.
func StripeMock(t testing.TB) string {
	t.Helper()
	bin := StripeMockBin()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("stripe-mock not found: run scripts/tools.sh")
		}
		t.Skip("stripe-mock not found: run scripts/tools.sh")
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test process
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	// stripe-mock prints "Listening for HTTP at address: 127.0.0.1:PORT" once it serves
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		const prefix = "Listening for HTTP at address: "
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, prefix) {
				select {
				case addr <- strings.TrimSpace(strings.TrimPrefix(line, prefix)):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-exited:
		t.Fatal("stripe-mock exited before it listened")
	case <-time.After(60 * time.Second):
		t.Fatal("stripe-mock did not listen within 60s")
	}
	// and answers: poll with a deadline, as for any external process becoming ready
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/customers/cus_ready", nil)
		req.Header.Set("Authorization", "Bearer "+Key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("stripe-mock at %s did not answer: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
