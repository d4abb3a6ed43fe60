#!/usr/bin/env bash
# Installs what building and testing Culvert needs and a fresh Debian machine may lack:
# clang and libclang (bindgen and RocksDB's C++ build), and for the tests PostgreSQL's
# server binaries, python3 with
# openapi-spec-validator (checks the HTTP API's OpenAPI document), and checks Go is there (the
# standalone-connector tests build a Go connector). Quiet when everything is
# present.
set -euo pipefail

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
if ! compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null \
    && ! compgen -G "/usr/lib/x86_64-linux-gnu/libclang*.so*" >/dev/null; then
  missing+=(libclang-dev)
fi

command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)

# The PostgreSQL tests start a throw-away server of their own (initdb in a temp dir,
# loopback only, stopped when the test ends); only the binaries are needed.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (needed to build RocksDB and run the tests)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
  echo "installing openapi-spec-validator (the OpenAPI document's test uses it)..." >&2
  python3 -m pip install --quiet --disable-pip-version-check openapi-spec-validator \
    || python3 -m pip install --quiet --break-system-packages openapi-spec-validator
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (rustup) first" >&2
  exit 3
fi

# The standalone-connector tests build a Go connector (tests/fixtures/connector) from the
# Go module proxy; its go.mod wants Go 1.25 or newer (Debian's golang-go is older).
if ! command -v go >/dev/null 2>&1; then
  echo "go is missing: install Go 1.25 or newer (https://go.dev/dl/); the standalone" \
    "connector tests build a Go connector" >&2
  exit 3
fi
