#!/usr/bin/env bash
# Builds every Rust plugin in plugins/<name>/ for wasm32-unknown-unknown and copies the result to
# plugins/<name>/<name>.wasm, which is committed so that running logwasm needs no Rust.
#
# Toolchain: Debian's rustc/cargo (apt: rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev).
# /usr/bin goes first in PATH because a rustup toolchain in ~/.cargo/bin may lack the wasm32 std.
# Crates come offline from /usr/share/cargo/registry (see plugins/<name>/.cargo/config.toml).
set -euo pipefail

export PATH="/usr/bin:$PATH"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
built=0
for manifest in "$root"/plugins/*/Cargo.toml; do
  dir="$(dirname "$manifest")"
  name="$(basename "$dir")"
  crate="${name//-/_}"
  echo "building plugin $name" >&2
  (cd "$dir" && cargo build --offline --release --locked --target wasm32-unknown-unknown)
  cp "$dir/target/wasm32-unknown-unknown/release/$crate.wasm" "$dir/$name.wasm"
  echo "wrote plugins/$name/$name.wasm ($(wc -c <"$dir/$name.wasm") bytes)" >&2
  built=$((built + 1))
done
if [ "$built" -eq 0 ]; then
  echo "no plugins found under $root/plugins" >&2
  exit 1
fi
