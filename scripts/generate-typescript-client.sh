#!/usr/bin/env bash
# `make client`: regenerate the TypeScript client's contract from the code, then type-check it.
#   clients/typescript/openapi.json   <- payments openapi (the document /schema/openapi.json serves)
#   clients/typescript/src/schema.d.ts <- openapi-typescript (the version package.json pins)
# tests/contract/test_typescript_client.py fails until these are regenerated after an API change.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENT=clients/typescript
PAYMENTS="${VENV:-.venv}/bin/payments"

if [ ! -d "$CLIENT/node_modules/openapi-typescript" ] || [ ! -d "$CLIENT/node_modules/typescript" ]; then
  echo "[client] npm install in $CLIENT (openapi-typescript, typescript; no lock file)"
  npm install --prefix "$CLIENT" --no-package-lock --no-audit --no-fund --loglevel=error
fi
"$PAYMENTS" openapi > "$CLIENT/openapi.json.new"
mv "$CLIENT/openapi.json.new" "$CLIENT/openapi.json"
npm run --prefix "$CLIENT" --silent generate
npm run --prefix "$CLIENT" --silent typecheck
echo "[client] $CLIENT/openapi.json and $CLIENT/src/schema.d.ts are up to date; client.ts and events.ts type-check"
