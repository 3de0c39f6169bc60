#!/usr/bin/env bash
# Install what the tests need (a virtualenv in .venv, corral built from this checkout
# with its compiled core) and run the whole suite twice: against the compiled core and
# against its pure-Python twin (CORRAL_NO_EXTENSIONS=1). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q '.[test]'
.venv/bin/corral version
echo "== test suite, compiled core"
.venv/bin/python -m pytest -q "$@"
echo "== test suite, pure-Python core (CORRAL_NO_EXTENSIONS=1)"
CORRAL_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q "$@"
