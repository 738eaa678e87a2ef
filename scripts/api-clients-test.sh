#!/usr/bin/env bash
# The API as its clients meet it, against one real `fugue serve`:
#   1. a Python SDK generated from the live /openapi.json (openapi-python-client),
#      used to upload, train, list, generate and download (tests/sdk/sdk_test.py);
#   2. every curl example of the README (tests/sdk/readme_examples.py);
#   3. schemathesis: property-based requests from the same document, bounded, with
#      no 5xx and no answer that contradicts the document allowed.
# Expects target/debug/fugue and the .venv test tools (scripts/test-requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/fugue-clients.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
FUGUE_ADDR="127.0.0.1:$port" FUGUE_DATA_DIR="$work/data" FUGUE_MODELS_DIR="$PWD/models" \
  FUGUE_STATIC_DIR="$PWD/static" FUGUE_TRAIN_WORKERS=2 FUGUE_LOG=warn \
  target/debug/fugue serve &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "$base/health" >/dev/null && break
  sleep 0.1
done

echo "api-clients: generating the Python SDK from $base/openapi.json" >&2
(cd "$work" && "$OLDPWD/.venv/bin/openapi-python-client" generate --url "$base/openapi.json" --meta none \
  --config "$OLDPWD/tests/sdk/openapi-python-client.yaml" >generator.log 2>&1)
# The generator warns about (and leaves out of the client) every answer it cannot
# read, such as a media type it does not know: the document must give it none.
if grep -v '^Generating ' "$work/generator.log" | grep -q .; then
  echo "api-clients: FAILED: openapi-python-client warned:" >&2
  cat "$work/generator.log" >&2
  exit 1
fi
PYTHONPATH="$work" .venv/bin/python3 tests/sdk/sdk_test.py "$base" ../shared/data

.venv/bin/python3 tests/sdk/readme_examples.py "$base" ../shared/data README.md

echo "api-clients: schemathesis" >&2
.venv/bin/schemathesis run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing --max-examples 15 --workers 2 --seed 1 \
  --report junit --report-dir "$PWD/test-artifacts/schemathesis"
