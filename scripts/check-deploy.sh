#!/usr/bin/env bash
# Static checks of the deployment files; no Docker engine runs on our machines.
#  - docker-compose.yml parses and resolves, alone and with the GPU override;
#  - every FUGUE_* variable the code reads appears in docker-compose.yml or README.md;
#  - the Dockerfile lints clean with hadolint.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null; then
  echo "check-deploy: installing docker-compose with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose -f docker-compose.yml config --quiet
docker-compose -f docker-compose.yml -f docker-compose.gpu.yml config --quiet

missing=0
for var in $(grep -rhoE '"FUGUE_[A-Z0-9_]+"' src | tr -d '"' | sort -u); do
  if ! grep -q "$var" docker-compose.yml README.md; then
    echo "check-deploy: $var is read by the code but documented in neither docker-compose.yml nor README.md" >&2
    missing=1
  fi
done
[ "$missing" = 0 ]

.venv/bin/hadolint Dockerfile
echo "check-deploy: docker-compose.yml and Dockerfile are sound" >&2
