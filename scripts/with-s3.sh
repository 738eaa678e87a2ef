#!/usr/bin/env bash
# Runs a command with FUGUE_TEST_S3_ENDPOINT pointing at an S3-compatible server
# on loopback: moto in server mode (PyPI's moto[server], installed into .venv by
# scripts/test-requirements.txt), on a free port, stopped on exit. The object
# storage suite and the multi-node test run against it.
set -euo pipefail
cd "$(dirname "$0")/.."

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/fugue-moto.XXXXXX)
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; wait $moto 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 $moto 2>/dev/null || { cat "$log" >&2; echo "with-s3: moto_server exited" >&2; exit 1; }
  sleep 0.2
done
echo "with-s3: moto_server on 127.0.0.1:$port" >&2
export FUGUE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
"$@"
