#!/usr/bin/env bash
# Installs what building and testing Culvert needs and a fresh Debian machine may lack:
# clang and libclang (bindgen and RocksDB's C++ build), and for the tests PostgreSQL's
# server binaries, Chromium (the web UI's browser test), python3 with
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

# The web UI's test (tests/ui.rs) drives Debian's headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

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

# builtin:s3's tests (builtin-connectors/s3, tests/s3.rs) run moto, an S3-compatible server,
# from a virtualenv outside the repository ($CULVERT_MOTO_VENV, else
# $HOME/.cache/culvert-moto). Debian's python3 needs python3-venv (ensurepip) for it; the
# venv itself is made here, or by the first test that needs it.
moto_version="5.2.5"
moto_venv="${CULVERT_MOTO_VENV:-$HOME/.cache/culvert-moto}"
if [ ! -e "$moto_venv/.moto-$moto_version" ]; then
  if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    echo "installing python3-venv (the S3 tests run moto in a virtualenv)..." >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
  fi
  echo "installing moto $moto_version into $moto_venv (the S3 tests' server)..." >&2
  mkdir -p "$(dirname "$moto_venv")"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
  touch "$moto_venv/.moto-$moto_version"
fi

# builtin:kafka (builtin-connectors/kafka): rdkafka builds librdkafka from source (its
# configure script, make and a C compiler) against the system's OpenSSL (TLS, SCRAM) and
# zlib (gzip); its tests (tests/kafka.rs) run a Kafka broker from Kafka's jars, fetched once
# from Maven Central with mvn, on a Java 17+ runtime.
kafka_missing=()
command -v make >/dev/null 2>&1 || kafka_missing+=(make)
command -v cc >/dev/null 2>&1 || kafka_missing+=(gcc)
command -v pkg-config >/dev/null 2>&1 || kafka_missing+=(pkg-config)
[ -e /usr/include/openssl/ssl.h ] || kafka_missing+=(libssl-dev)
[ -e /usr/include/zlib.h ] || kafka_missing+=(zlib1g-dev)
command -v java >/dev/null 2>&1 || kafka_missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || kafka_missing+=(maven)
if [ ${#kafka_missing[@]} -gt 0 ]; then
  echo "installing ${kafka_missing[*]} (builtin:kafka's build and its test broker)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${kafka_missing[@]}" >/dev/null
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
