#!/usr/bin/env bash
# Installs the Debian packages that `make demo` or `make test` need, when they are missing:
#
#   scripts/deps.sh demo   PostgreSQL's server binaries (Debian's postgresql)
#   scripts/deps.sh test   those, plus what the Django and browser tests use, and Django 4.2 from
#                          bookworm-backports unpacked into ~/.cache/tollgate/django-4.2 (never installed
#                          over Debian's Django 3.2, which the other tests use)
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
  # django/README.md's offline install: a venv that sees Debian's packages, pip without an index and
  # without build isolation, which builds with Debian's setuptools and wheel
  /usr/bin/python3 -c 'import ensurepip, venv, setuptools, wheel' >/dev/null 2>&1 || packages+=(python3-venv python3-setuptools python3-wheel)
  # the funnel page is checked in headless Chromium
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
fi

updated=false
if ((${#packages[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: ${packages[*]}"
  apt-get update -qq
  updated=true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

[[ $what == test ]] || exit 0

# Django 4.2 LTS from bookworm-backports, for the Django tests' second run (tests/django): the package is
# downloaded and unpacked into a directory of its own, which the tests put first on PYTHONPATH; Debian's
# python3-asgiref and python3-sqlparse (its dependencies) are already there with python3-django.
django42=${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/django-4.2
if [[ -f $django42/site/django/__init__.py ]]; then
  exit 0
fi
backports=/etc/apt/sources.list.d/tollgate-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: Django 4.2 comes from bookworm-backports, which apt does not know; add it with:" >&2
    echo "  printf 'Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' | sudo tee $backports && sudo apt-get update" >&2
    exit 1
  fi
  echo "deps: adding bookworm-backports to apt's sources ($backports); nothing is installed from it"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$backports"
  updated=false
fi
if [[ $updated == false && $(id -u) -eq 0 ]]; then
  apt-get update -qq
fi
echo "deps: unpacking Django 4.2 from bookworm-backports into $django42 (not installed system-wide)"
tmp=$(mktemp -d)
chmod 755 "$tmp" # apt-get download fetches as the _apt user
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq python3-django/bookworm-backports)
dpkg-deb -x "$tmp"/python3-django_*.deb "$tmp/root"
rm -rf "$django42"
mkdir -p "$django42"
mv "$tmp/root/usr/lib/python3/dist-packages" "$django42/site"
/usr/bin/python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import django; print("deps: Django", django.get_version(), "in", sys.argv[1])' "$django42/site"
