# The two commands of the README: `make run` and `make test`.
# Every target sets up libtorch and the SoundFonts first (idempotent), so nobody
# exports or installs anything by hand.

SHELL := /bin/bash
export LIBTORCH_USE_PYTORCH := 1
# tch's build script asks the venv's python3 where libtorch is.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup build run test fmt

setup:
	@scripts/setup-libtorch.sh
	@scripts/setup-soundfont.sh

build: setup
	cargo build --release

run: build
	./target/release/fugue serve

test: setup
	scripts/test.sh

fmt:
	cargo fmt
