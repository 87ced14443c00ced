#!/usr/bin/env bash
# Installs the Debian packages that `make demo` or `make test` need, when they are missing:
#
#   scripts/deps.sh demo   PostgreSQL's server binaries (Debian's postgresql)
#   scripts/deps.sh test   those, plus what the Django and browser tests use
#
# As root it runs apt-get and says so; otherwise it prints the one command to run and fails. A package
# that is already there is never touched.
set -euo pipefail

what=${1:-test}
packages=()

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
have_postgres || packages+=(postgresql)

if [[ $what == test ]]; then
  # Django tests (tests/django) run Debian's python3 with Debian's Django 3.2; psycopg 3 and DRF are optional
  # there, but installed so that their tests run rather than skip.
  /usr/bin/python3 -c 'import django, psycopg2' >/dev/null 2>&1 || packages+=(python3-django python3-psycopg2)
  /usr/bin/python3 -c 'import psycopg, rest_framework' >/dev/null 2>&1 || packages+=(python3-psycopg python3-djangorestframework)
  # the funnel page is checked in headless Chromium
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
fi

if ((${#packages[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi
echo "deps: installing Debian packages: ${packages[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
