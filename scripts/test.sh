#!/usr/bin/env bash
# `make test`: lints, static checks of the deployment files, then every test,
# with Postgres (see with-postgres.sh). Called by the Makefile, which has set up
# libtorch and the build environment.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "test tools"
.venv/bin/python3 -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "deployment files"
scripts/check-deploy.sh

step "OpenAPI document validates (openapi-spec-validator)"
cargo build --locked --quiet
openapi=$(mktemp --suffix=.json)
trap 'rm -f "$openapi"' EXIT
target/debug/fugue openapi >"$openapi"
.venv/bin/python3 -m openapi_spec_validator "$openapi"

step "the tutorial presets' tokens against music21 on the 410 chorales (tests/tutorials)"
(cd tests/tutorials && ../../.venv/bin/python3 check_tutorial_tokens.py ../../target/debug/fugue ../../../shared/data/bach-chorales-midi)

step "cargo test (SQLite and Postgres; the filesystem and S3 through moto_server)"
scripts/with-postgres.sh scripts/with-s3.sh cargo test --locked

step "the page in headless Chromium (tests/browser)"
scripts/browser-test.sh

step "generated SDK, README examples, schemathesis (tests/sdk)"
scripts/api-clients-test.sh
