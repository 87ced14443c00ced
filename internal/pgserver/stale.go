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
//
// Anyone can create a tollgate-pg-* directory there, and the sweep may run as root: it only trusts a
// directory that is ours (trusted), and only stops the process its postmaster.pid names if that is a
// postgres running in its data directory (postmasterPID).
func sweepStale(logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	if os.TempDir() != shmDir {
		more, _ := filepath.Glob(filepath.Join(shmDir, tempPrefix+"*"))
		dirs = append(dirs, more...)
	}
	for _, dir := range dirs {
		fi, ok := trusted(dir)
		if !ok {
			continue
		}
		alive, known := ownerAlive(dir)
		if alive {
			continue
		}
		if !known && time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		dataDir := filepath.Join(dir, "data")
		if pid := postmasterPID(dataDir); pid > 0 {
			logf("pgserver: stopping stale postgres (pid %d) in %s", pid, dir)
			stopPID(pid, dataDir)
		}
		logf("pgserver: removing stale %s", dir)
		os.RemoveAll(dir)
	}
}

// trusted reports whether dir is a directory this process's user could have made with makeTempRoot: a real
// directory (not a symlink) owned by the effective uid and writable by nobody else, so that nobody else
// can have put or changed anything in it.
func trusted(dir string) (os.FileInfo, bool) {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() {
		return nil, false
	}
	return fi, true
}

// postmasterPID reads the first line of dataDir/postmaster.pid and returns the pid if that process
// is the postmaster of dataDir (isPostmasterOf), else 0.
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
	if err != nil || pid <= 0 || !isPostmasterOf(pid, dataDir) {
		return 0
	}
	return pid
}

// isPostmasterOf reports whether process pid is a postgres process of the cluster in dataDir: its name
// starts with postgres, it runs as the owner of dataDir (postgres refuses any other), and its working
// directory (the postmaster changes to its data directory) or the -D argument of its command line is
// dataDir.
func isPostmasterOf(pid int, dataDir string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(proc + "/comm")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return false
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(want)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || procEUID(pid) != int64(st.Uid) {
		return false
	}
	if cwd, err := os.Readlink(proc + "/cwd"); err == nil && cwd == want {
		return true
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for i, a := range args {
		var d string
		switch {
		case a == "-D" && i+1 < len(args):
			d = args[i+1]
		case strings.HasPrefix(a, "-D") && len(a) > 2:
			d = a[2:]
		default:
			continue
		}
		if !filepath.IsAbs(d) {
			continue
		}
		if r, err := filepath.EvalSymlinks(d); err == nil && r == want {
			return true
		}
	}
	return false
}

// procEUID is the effective uid of process pid, or -1.
func procEUID(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest) // real, effective, saved, filesystem
			if len(f) < 2 {
				return -1
			}
			uid, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1
			}
			return uid
		}
	}
	return -1
}

// stopPID sends SIGQUIT (immediate shutdown) to the postmaster of dataDir and waits up to stopTimeout for
// it to go, then kills it. The process is held by a pidfd, checked again once held, and signalled through
// it, so that a pid reused meanwhile by another process is not signalled.
func stopPID(pid int, dataDir string) {
	signal := func(sig syscall.Signal) error { return syscall.Kill(pid, sig) }
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		signal = func(sig syscall.Signal) error { return unix.PidfdSendSignal(fd, sig, nil, 0) }
	} else if !errors.Is(err, unix.ENOSYS) {
		return // gone, or not ours to signal
	}
	if !isPostmasterOf(pid, dataDir) {
		return
	}
	if err := signal(syscall.SIGQUIT); err != nil {
		return
	}
	if !WaitExit(pid, stopTimeout) {
		signal(syscall.SIGKILL)
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
