#!/usr/bin/env bash
# Installs what building Culvert needs and a fresh Debian machine may lack: clang and
# libclang (bindgen and RocksDB's C++ build). Quiet when everything is present.
set -euo pipefail

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
if ! compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null \
    && ! compgen -G "/usr/lib/x86_64-linux-gnu/libclang*.so*" >/dev/null; then
  missing+=(libclang-dev)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (needed to build RocksDB)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (rustup) first" >&2
  exit 3
fi
