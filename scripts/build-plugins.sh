#!/usr/bin/env bash
# Builds the Rust plugins in plugins/<name>/ for wasm32-unknown-unknown and copies each result to
# plugins/<name>/<name>.wasm, which is committed so that running logwasm needs no Rust.
#
#   scripts/build-plugins.sh              every plugin (a crate with crate-type "cdylib")
#   scripts/build-plugins.sh redact       only the named ones
#
# plugins/sdk-rust/ is the SDK library the plugins depend on, not a plugin: it is skipped.
# Fluent Bit-style filters (plugins/fluent-bit-*/) target wasm32-wasi, as Fluent Bit's do.
#
# Toolchain: Debian's rustc/cargo (apt: rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev).
# /usr/bin goes first in PATH because a rustup toolchain in ~/.cargo/bin may lack the wasm32 std.
# Crates come offline from /usr/share/cargo/registry (see plugins/<name>/.cargo/config.toml).
set -euo pipefail

export PATH="/usr/bin:$PATH"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -gt 0 ]; then
  manifests=()
  for name in "$@"; do manifests+=("$root/plugins/$name/Cargo.toml"); done
else
  manifests=("$root"/plugins/*/Cargo.toml)
fi
built=0
for manifest in "${manifests[@]}"; do
  dir="$(dirname "$manifest")"
  name="$(basename "$dir")"
  if [ ! -f "$manifest" ]; then
    echo "no plugin $name (no $manifest)" >&2
    exit 1
  fi
  grep -q 'cdylib' "$manifest" || continue
  crate="${name//-/_}"
  target="wasm32-unknown-unknown"
  case "$name" in fluent-bit-*) target="wasm32-wasi" ;; esac
  echo "building plugin $name ($target)" >&2
  (cd "$dir" && cargo build --offline --release --locked --target "$target")
  cp "$dir/target/$target/release/$crate.wasm" "$dir/$name.wasm"
  echo "wrote plugins/$name/$name.wasm ($(wc -c <"$dir/$name.wasm") bytes)" >&2
  built=$((built + 1))
done
if [ "$built" -eq 0 ]; then
  echo "no plugins found under $root/plugins" >&2
  exit 1
fi
