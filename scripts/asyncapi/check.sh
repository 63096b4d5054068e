#!/usr/bin/env bash
# Validates docs/asyncapi.yaml (or FILE) with the official AsyncAPI parser, installed here
# from npm on first use (versions pinned in package.json and package-lock.json).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
file="${1:-$here/../../docs/asyncapi.yaml}"
command -v node >/dev/null || { echo "error: node (20 or newer) is needed to validate $file" >&2; exit 1; }
if [[ ! -d "$here/node_modules/@asyncapi/parser" ]]; then
  npm ci --prefix "$here" --no-audit --no-fund --silent
fi
node "$here/validate.mjs" "$file"
