#!/usr/bin/env bash
# Checks the Debian packages a make target needs and installs the missing ones as root;
# without root it prints the exact apt-get command line and exits 1 (it never calls sudo).
#
#   provision.sh demo   python3 and its venv module only: `make demo` runs the daemon on
#                       the built-in sandbox with an SQLite journal, nothing else.
#   provision.sh test   (the default) everything the whole suite drives for real: Docker,
#                       PostgreSQL, Prometheus, Alertmanager, Compose, Chromium.
#
# `apt-get update` runs once, only if something is missing.
set -euo pipefail

mode=${1:-test}
case "$mode" in
  demo | test) ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)

if [ "$mode" = test ]; then
  # A real Docker engine for the Docker tests (started by the suite when none answers),
  # and the static busybox their images are made of. dockerd lives in /usr/sbin, which
  # is not on an ordinary user's PATH: looked for there too, or it would be named wrongly.
  command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
  dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
  # A throwaway PostgreSQL server for the configuration-table tests (started by the suite
  # from Debian's versioned server folder), and the client tools the backup paths call.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
  { command -v psql && command -v pg_dump; } >/dev/null || need+=(postgresql-client)
  # Real Prometheus and Alertmanager (and promtool/amtool, which they ship) for the
  # alerting end-to-end tests and the checks of the deploy/ and grafana/ files.
  { command -v prometheus && command -v promtool; } >/dev/null || need+=(prometheus)
  { command -v prometheus-alertmanager && command -v amtool; } >/dev/null \
    || need+=(prometheus-alertmanager)
  # Compose, to resolve deploy/docker-compose.watchdog.yml in the deploy tests.
  command -v docker-compose >/dev/null || need+=(docker-compose)
  # The sidecar image test's local Debian base (scripts/base-image.sh; no registry here).
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  # Debian's Chromium for the web page test (driven by Playwright with executable_path;
  # never `playwright install`, whose browser download is not used here).
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi

if ((${#need[@]})); then
  # $EUID, not `id -u`: a bash builtin, so the check holds on any PATH.
  if [ "$EUID" != 0 ]; then
    {
      echo "provision ($mode): missing Debian packages: ${need[*]}"
      echo "install them as root, then run make again:"
      echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}"
      if [ "$mode" = test ]; then
        echo "(\`make demo\` needs none of these: only python3 and python3-venv)"
      fi
    } >&2
    exit 1
  fi
  echo "provision ($mode): installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
