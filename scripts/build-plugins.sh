#!/usr/bin/env bash
# Builds the Rust plugins in plugins/<name>/ for wasm32-unknown-unknown and copies each result to
# plugins/<name>/<name>.wasm, which is committed so that running logwasm needs no Rust.
#
#   scripts/build-plugins.sh              every plugin (a crate with crate-type "cdylib")
#   scripts/build-plugins.sh redact       only the named ones
#
# plugins/sdk-rust/ is the SDK library the plugins depend on, not a plugin: it is skipped.
# AssemblyScript plugins (plugins/<name>/assembly/index.ts) are built with the npm `assemblyscript`
# compiler (a devDependency: `npm install` first), with no Rust at all.
# Fluent Bit-style filters (plugins/fluent-bit-*/) target wasm32-wasi, as Fluent Bit's do. Any other
# crate may declare its target in Cargo.toml (e.g. a logwasm-ABI plugin that needs WASI files):
#   [package.metadata.logwasm]
#   target = "wasm32-wasi"
#
# Toolchain: Debian's rustc/cargo (apt: rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev).
# /usr/bin goes first in PATH because a rustup toolchain in ~/.cargo/bin may lack the wasm32 std.
# Crates come offline from /usr/share/cargo/registry (see plugins/<name>/.cargo/config.toml).
set -euo pipefail

export PATH="/usr/bin:$PATH"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -gt 0 ]; then
  names=("$@")
else
  names=()
  for dir in "$root"/plugins/*/; do names+=("$(basename "$dir")"); done
fi
built=0
manifests=()
for name in "${names[@]}"; do
  dir="$root/plugins/$name"
  if [ -f "$dir/assembly/index.ts" ]; then
    echo "building plugin $name (AssemblyScript)" >&2
    (cd "$root" && npx --no-install asc "plugins/$name/assembly/index.ts" --runtime incremental --use abort= -O3 --noAssert -o "plugins/$name/$name.wasm")
    echo "wrote plugins/$name/$name.wasm ($(wc -c <"$dir/$name.wasm") bytes)" >&2
    built=$((built + 1))
  elif [ -f "$dir/Cargo.toml" ]; then
    manifests+=("$dir/Cargo.toml")
  elif [ "$#" -gt 0 ]; then
    echo "no plugin $name (neither $dir/Cargo.toml nor $dir/assembly/index.ts)" >&2
    exit 1
  fi
done
for manifest in "${manifests[@]}"; do
  dir="$(dirname "$manifest")"
  name="$(basename "$dir")"
  grep -q 'cdylib' "$manifest" || continue
  crate="${name//-/_}"
  target="wasm32-unknown-unknown"
  case "$name" in fluent-bit-*) target="wasm32-wasi" ;; esac
  declared="$(sed -n '/^\[package\.metadata\.logwasm\]/,/^\[/s/^target *= *"\([^"]*\)".*/\1/p' "$manifest")"
  [ -z "$declared" ] || target="$declared"
  echo "building plugin $name ($target)" >&2
  # A new plugin has no lock file yet: make one from the offline registry, then build --locked.
  [ -f "$dir/Cargo.lock" ] || (cd "$dir" && cargo generate-lockfile --offline)
  (cd "$dir" && cargo build --offline --release --locked --target "$target")
  cp "$dir/target/$target/release/$crate.wasm" "$dir/$name.wasm"
  echo "wrote plugins/$name/$name.wasm ($(wc -c <"$dir/$name.wasm") bytes)" >&2
  built=$((built + 1))
done
# The host's own wasm in crates/<name>/ (not plugins; e.g. otlp_encode, the OTLP encoder's fast
# path) is built too, to crates/<name>/<name>.wasm, unless only named plugins were asked for.
if [ "$#" -eq 0 ]; then
  for manifest in "$root"/crates/*/Cargo.toml; do
    [ -f "$manifest" ] || continue
    dir="$(dirname "$manifest")"
    name="$(basename "$dir")"
    echo "building crate $name (wasm32-unknown-unknown)" >&2
    [ -f "$dir/Cargo.lock" ] || (cd "$dir" && cargo generate-lockfile --offline)
    (cd "$dir" && cargo build --offline --release --locked --target wasm32-unknown-unknown)
    cp "$dir/target/wasm32-unknown-unknown/release/${name//-/_}.wasm" "$dir/$name.wasm"
    echo "wrote crates/$name/$name.wasm ($(wc -c <"$dir/$name.wasm") bytes)" >&2
  done
fi
if [ "$built" -eq 0 ]; then
  echo "no plugins found under $root/plugins" >&2
  exit 1
fi
