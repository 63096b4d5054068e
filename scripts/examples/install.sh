#!/usr/bin/env bash
# Installs what the client examples need (the test command runs them against the local
# stack): a Python virtualenv with the locked packages from PyPI, and the TypeScript
# example's npm packages from its lockfile. Idempotent: reinstalls only when a lockfile changed.
set -euo pipefail
cd "$(dirname "$0")/../../examples"

python=python/.venv/bin/python
stamp=python/.venv/requirements.lock
if ! cmp -s python/requirements.lock "$stamp"; then
  echo "examples: installing the Python packages"
  python3 -m venv python/.venv
  "$python" -m pip install --quiet --disable-pip-version-check -r python/requirements.lock
  cp python/requirements.lock "$stamp"
fi

stamp=typescript/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ typescript/package-lock.json -nt "$stamp" ]; then
  echo "examples: installing the TypeScript packages"
  (cd typescript && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd typescript && npx --no-install tsc --noEmit)
