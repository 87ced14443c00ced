package pgserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The owner file records "<pid> <start time>" of the process that created a throwaway cluster. The
// start time (from /proc/<pid>/stat) tells a live owner from a recycled pid.

func writeOwner(root string) error {
	pid := os.Getpid()
	return os.WriteFile(filepath.Join(root, ownerFile), []byte(fmt.Sprintf("%d %s\n", pid, procStartTime(pid))), 0o644)
}

// procStartTime is field 22 of /proc/<pid>/stat, or "" if the process does not exist.
func procStartTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may contain spaces: split after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

func ownerAlive(root string) (alive bool, known bool) {
	b, err := os.ReadFile(filepath.Join(root, ownerFile))
	if err != nil {
		return false, false
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return false, false
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return false, false
	}
	start := procStartTime(pid)
	if start == "" {
		return false, true
	}
	return len(fields) < 2 || fields[1] == start, true
}

// sweepStale removes tollgate-pg-* directories (in /dev/shm and os.TempDir()) whose owner process is
// gone, first stopping any postmaster still running there. Directories without an owner file are
// left alone unless they are over an hour old (their creator may be between MkdirTemp and
// writeOwner). A custom Options.TempRoot is not swept.
func sweepStale(logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	if os.TempDir() != shmDir {
		more, _ := filepath.Glob(filepath.Join(shmDir, tempPrefix+"*"))
		dirs = append(dirs, more...)
	}
	for _, dir := range dirs {
		alive, known := ownerAlive(dir)
		if alive {
			continue
		}
		if !known {
			fi, err := os.Stat(dir)
			if err != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		}
		if pid := postmasterPID(filepath.Join(dir, "data")); pid > 0 {
			logf("pgserver: stopping stale postgres (pid %d) in %s", pid, dir)
			stopPID(pid)
		}
		logf("pgserver: removing stale %s", dir)
		os.RemoveAll(dir)
	}
}

// postmasterPID reads the first line of dataDir/postmaster.pid and returns the pid if that process
// is still a postgres process, else 0.
func postmasterPID(dataDir string) int {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || pid <= 0 {
		return 0
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return 0
	}
	return pid
}

// stopPID sends SIGQUIT (immediate shutdown) and waits up to stopTimeout for the process to go,
// then kills it.
func stopPID(pid int) {
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return
	}
	if !WaitExit(pid, stopTimeout) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// WaitExit waits until process pid (not necessarily a child) has exited, up to timeout, and reports
// whether it did. It waits on a pidfd; on kernels without pidfd_open it polls.
func WaitExit(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err == nil {
		defer unix.Close(fd)
		for {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
			if n > 0 {
				return true
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
