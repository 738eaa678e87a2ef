#!/usr/bin/env bash
# Installs libtorch (through PyTorch's wheel) into the project-local .venv.
# tch 0.26 links against the libtorch of PyTorch 2.13.0 exactly. Idempotent:
# when the venv already has that torch, it does nothing.
set -euo pipefail

TORCH_VERSION="2.13.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

installed_version() {
  "$venv/bin/python3" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true
}

if [ -x "$venv/bin/python3" ] && [ "$(installed_version)" = "$TORCH_VERSION" ]; then
  exit 0
fi

echo "setup-libtorch: installing torch==$TORCH_VERSION into $venv (one time, about 5 GB)" >&2
python3 -m venv "$venv"
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"

if [ "$(installed_version)" != "$TORCH_VERSION" ]; then
  echo "setup-libtorch: torch $TORCH_VERSION did not install into $venv" >&2
  exit 1
fi
