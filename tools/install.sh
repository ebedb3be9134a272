#!/usr/bin/env bash
# Installs tmai-pay's pinned toolchain into tools/ and links the commands into tools/bin:
# anvil, forge and cast (Foundry 1.7.1 from npm), solc (solc-js behind a solc-compatible
# command, or a native compiler), OpenZeppelin Contracts, and the real markets the USD
# pricing tests deploy on anvil: Uniswap v3 (@uniswap/v3-core and v3-periphery, whose npm
# packages carry the compiled factory, pool, position manager and router) and Chainlink
# (@chainlink/contracts, whose MockV3Aggregator the tests compile), and Unlock Protocol's
# PublicLock artifacts (@unlock-protocol/contracts, deployed by the renewal gas bench in
# contracts/test/bench/UnlockRenewal.t.sol). Then installs the checkout
# page's pinned packages (web/package-lock.json), bundles the page and the API docs page
# (Swagger UI) into web/dist/, installs localstripe (the fake card processor of the card
# tests) into tools/pyvenv, and makes sure a Chromium is there for the browser test
# (Debian's package, as root). Idempotent: when
# everything is in place and nothing has changed it does nothing and prints nothing.
#
# Native tools win when asked for: TMAI_PAY_SOLC=/path/to/solc, TMAI_PAY_ANVIL=/path/to/anvil,
# TMAI_PAY_FORGE=..., TMAI_PAY_CAST=... are linked instead of the npm builds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

need_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "tools/install.sh: installing Node.js and npm from Debian" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
      echo "tools/install.sh: node and npm are required (apt-get install nodejs npm)" >&2
      exit 1
    fi
  fi
}

stamp=node_modules/.tmai-pay-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  need_node
  echo "tools/install.sh: installing pinned tools (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi

link() { # name, override variable value, npm path
  local name=$1 override=$2 default=$3 target
  target=${override:-$here/$default}
  if [ ! -x "$target" ]; then
    echo "tools/install.sh: $name not executable at $target" >&2
    exit 1
  fi
  if [ "$(readlink "bin/$name" 2>/dev/null)" != "$target" ]; then
    ln -sfn "$target" "bin/$name"
  fi
}
mkdir -p bin
link anvil "${TMAI_PAY_ANVIL:-}" node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
link forge "${TMAI_PAY_FORGE:-}" node_modules/@foundry-rs/forge-linux-amd64/bin/forge
link cast "${TMAI_PAY_CAST:-}" node_modules/@foundry-rs/cast-linux-amd64/bin/cast
link solc "${TMAI_PAY_SOLC:-}" solc-js.js

# localstripe (PyPI, pinned in tools/localstripe/requirements.txt), the fake card processor
# the card webhook tests take their invoice, subscription and charge objects from; installed
# in the ignored venv tools/pyvenv/ (shared with scripts/schemathesis), once per pin.
venv="$here/pyvenv"
ls_stamp="$venv/.tmai-pay-localstripe"
if [ ! -x "$venv/bin/localstripe" ] || [ ! -f "$ls_stamp" ] || ! cmp -s localstripe/requirements.txt "$ls_stamp"; then
  echo "tools/install.sh: installing localstripe into tools/pyvenv (pip)" >&2
  if [ ! -x "$venv/bin/pip" ]; then
    if ! python3 -m venv "$venv" >&2; then
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv" >&2
      else
        echo "tools/install.sh: python3 with venv is required (apt-get install python3-venv)" >&2
        exit 1
      fi
    fi
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r localstripe/requirements.txt >&2
  cp localstripe/requirements.txt "$ls_stamp"
fi

# The checkout page: pinned packages, then the bundle in web/dist/ that the service serves.
web="$here/../web"
if [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules" ]; then
  need_node
  echo "tools/install.sh: installing the checkout page's packages (npm ci in web/)" >&2
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$web/node_modules"
fi
# The bundle also embeds the checkout and token ABIs from contracts/artifacts/; the docs
# page (docs.html, docs.css, src/docs.js and Swagger UI from swagger-ui-dist) is copied beside it.
if [ ! -f "$web/dist/checkout.js" ] || [ ! -f "$web/dist/docs.html" ] || [ ! -f "$web/dist/account.js" ] || [ -n "$(find "$web/src" "$web/checkout.html" \
    "$web/checkout.css" "$web/account.html" "$web/account.css" "$web/docs.html" "$web/docs.css" "$web/build.mjs" "$web/package-lock.json" \
    "$here/../contracts/artifacts" -newer "$web/dist/checkout.js" -print -quit)" ]; then
  need_node
  echo "tools/install.sh: building the checkout and docs pages (node web/build.mjs)" >&2
  node "$web/build.mjs"
fi

# The browser test (web/e2e/checkout.mjs) drives Chromium; CHROMIUM=/path overrides it.
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "tools/install.sh: installing chromium from Debian (for the browser test)" >&2
    apt_chromium() {
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    }
    apt_chromium || { apt-get update -qq && apt_chromium; }
  else
    echo "tools/install.sh: the browser test needs chromium at /usr/bin/chromium" \
      "(as root: apt-get install --no-install-recommends chromium, or set CHROMIUM=/path)" >&2
  fi
fi
