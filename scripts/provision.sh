#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing (we run as
# root on these machines); `apt-get update` runs once, only if something is missing.
set -euo pipefail

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# A real Docker engine for the Docker tests (started by the suite when none answers),
# and the static busybox their images are made of.
command -v dockerd >/dev/null || need+=(docker.io)
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
# Debian's Chromium for the web page test (driven by Playwright with executable_path;
# never `playwright install`, whose browser download is not used here).
[ -x /usr/bin/chromium ] || need+=(chromium)

if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "provision: missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "provision: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
