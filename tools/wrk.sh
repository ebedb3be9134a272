#!/usr/bin/env bash
# Installs Debian's wrk (the API benchmark's load generator) when it is missing, as root.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null \
    || { apt-get update >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null; }
else
  echo "wrk is missing; install Debian's wrk package" >&2
  exit 1
fi
