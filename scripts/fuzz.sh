#!/usr/bin/env bash
# Runs every Go fuzz target of the module (func FuzzXxx in a *_test.go file) for DURATION each, default 2m:
# `go test -fuzz` takes one package and one target at a time. DURATION is what -fuzztime takes: a time, or a
# number of inputs (3000x). `make test` runs 3000 inputs per target: a count, because Go 1.26's fuzzing can
# fail with a spurious "context deadline exceeded" when a duration ends (go.dev/issue/75804, fixed in Go
# 1.27), which a loaded CI machine hits. `make fuzz` runs for a time (FUZZTIME=10m make fuzz). A failing input is written to the package's
# testdata/fuzz/FuzzXxx/ and then runs as an ordinary test: commit it with the fix.
#
# One worker per target (-parallel 1): targets that use a database start a PostgreSQL per worker process.
# New inputs are not minimized (-fuzzminimizetime 0): minimizing in a worker that is stopped at the deadline
# would be reported as a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-2m}
found=0
while read -r file name; do
  pkg=./$(dirname "$file")
  echo "fuzz: $name ($pkg) for $duration"
  go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$duration" -fuzzminimizetime 0 -parallel 1
  found=$((found + 1))
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed -e 's|^\./||' -e 's|:func | |' | sort)
if [[ $found -eq 0 ]]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
echo "fuzz: $found targets, $duration each, no failures"
