#!/usr/bin/env bash
# Install what the tests need (a virtualenv in .venv, corral built from this checkout
# with its compiled core) and run the whole suite twice: against the compiled core and
# against its pure-Python twin (CORRAL_NO_EXTENSIONS=1). The twin pass skips the tests
# marked `slow` (real processes: every test under tests/integration and the example
# frameworks' cluster tests): it checks the core, the engines and the simulator, which are
# what the twin changes. Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# system packages the real-component tests start: ZooKeeper (high availability)
missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
# the web UI's tests drive Debian's chromium with chromium-driver (selenium)
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium and chromium-driver (apt-get)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
fi
# the security tests make a TLS certificate (openssl) and run tasks as other users
# (util-linux's setpriv)
if ! command -v openssl >/dev/null || ! command -v setpriv >/dev/null; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl util-linux >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q '.[test]'
.venv/bin/corral version
echo "== test suite, compiled core"
.venv/bin/python -m pytest -q "$@"
echo "== test suite, pure-Python core (CORRAL_NO_EXTENSIONS=1), without the slow real-process tests"
CORRAL_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q -m "not slow" "$@"
