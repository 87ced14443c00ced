package djangotest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// installCommands are the lines of the first ```sh block after "## Install" in django/README.md: the
// documented install, run here as written.
func installCommands(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../../django/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	section, block := false, false
	sc := bufio.NewScanner(strings.NewReader(string(readme)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			if block || len(cmds) > 0 {
				return cmds
			}
			section = line == "## Install"
		case section && line == "```sh":
			block = true
		case block && line == "```":
			return cmds
		case block:
			if cmd, _, _ := strings.Cut(line, "#"); strings.TrimSpace(cmd) != "" {
				cmds = append(cmds, strings.TrimSpace(cmd))
			}
		}
	}
	t.Fatal("django/README.md has no ```sh block under ## Install")
	return nil
}

// TestInstallOffline runs django/README.md's install commands, as written, in a fresh directory holding a
// copy of django/, with no package index reachable (pip's proxies point at a closed port), on Debian's
// python3: the package installs into the venv and imports from there, with its template, next to Debian's
// Django.
func TestInstallOffline(t *testing.T) {
	t.Parallel()
	python := findPython(t)
	cmds := installCommands(t)
	if len(cmds) == 0 {
		t.Fatal("no install command in django/README.md")
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", "../../django", filepath.Join(dir, "django")).CombinedOutput(); err != nil {
		t.Fatalf("copying django/: %v\n%s", err, out)
	}
	env := append(os.Environ(),
		// the python3 of the commands is the one these tests use (Debian's), first on PATH
		"PATH="+filepath.Dir(python)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"http_proxy=http://127.0.0.1:9", "https_proxy=http://127.0.0.1:9",
		"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9",
		"PIP_CONFIG_FILE=/dev/null", "PYTHONDONTWRITEBYTECODE=1",
	)
	for _, c := range cmds {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-euc", c)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		cancel()
		t.Logf("$ %s\n%s", c, out)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	venvPython := filepath.Join(dir, ".venv", "bin", "python")
	check := exec.Command(venvPython, "-c", `
import os, django, tollgate_django, tollgate_django.testing, tollgate_django.admin
import tollgate_django.management.commands.tollgate_grant, tollgate_django.management.commands.tollgate_override
here = os.path.dirname(tollgate_django.__file__)
assert "site-packages" in here, here
assert os.path.exists(os.path.join(here, "templates", "tollgate", "quota_exceeded.html"))
print(django.get_version())
`)
	check.Dir = t.TempDir() // not next to the source
	check.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=")
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("the installed package: %v\n%s", err, out)
	}
}
