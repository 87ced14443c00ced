#!/usr/bin/env bash
# Builds the external programs the tests start, pinned, into a cache directory:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/bin
#
# Idempotent: a tool already built at its pinned version is kept. Tests look
# for each tool there first, then on PATH, and skip with a pointer to this
# script when it is missing (CI runs this script first, so CI never skips).
#
#   scripts/tools.sh            build every tool
#   scripts/tools.sh stripe-mock
#   scripts/tools.sh --dir      print the directory and exit
#
# To add a tool: one line in TOOLS (name, Go package, version).
set -euo pipefail

BIN="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/bin"

# name  go-package  version
TOOLS=(
  "stripe-mock github.com/stripe/stripe-mock v0.203.0"
  "mailpit github.com/axllent/mailpit v1.33.1"
)

if [[ "${1:-}" == "--dir" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
want=("$@")

build() {
  local name=$1 pkg=$2 version=$3
  local stamp="$BIN/.$name.version"
  if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$pkg@$version" ]]; then
    echo "tools: $name $version (cached)"
    return
  fi
  echo "tools: building $name $version"
  local tmp
  tmp=$(mktemp -d)
  # GOFLAGS=-mod=mod: build the tool with its own go.mod, not this module's
  GOBIN="$tmp" GOFLAGS=-mod=mod go install "$pkg@$version"
  mv -f "$tmp/$(basename "$pkg")" "$BIN/$name"
  rm -rf "$tmp"
  echo "$pkg@$version" >"$stamp"
}

for entry in "${TOOLS[@]}"; do
  read -r name pkg version <<<"$entry"
  if ((${#want[@]})) && [[ ! " ${want[*]} " =~ " $name " ]]; then
    continue
  fi
  build "$name" "$pkg" "$version"
done
