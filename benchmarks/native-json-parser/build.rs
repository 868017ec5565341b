//! Copies the json_parser plugin's source into OUT_DIR as a module this binary can call: inner doc
//! comments (`//!`, not allowed in an `include!`d item list) are dropped and the private
//! `fn rewrite(` becomes `pub fn rewrite(`. Everything else is the plugin's code byte for byte, so
//! the native reference runs exactly the transform the wasm module runs.
use std::{env, fs, path::Path};

fn main() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/json_parser/src/lib.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = fs::read_to_string(&source).unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
    let kept: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with("//!")).collect();
    let mut module = kept.join("\n");
    let before = module.matches("\nfn rewrite(").count();
    assert_eq!(before, 1, "expected one `fn rewrite(` in {}; the benchmark needs updating", source.display());
    module = module.replace("\nfn rewrite(", "\npub fn rewrite(");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("json_parser_plugin.rs");
    fs::write(&out, module).unwrap();
}
