//! Benchmark reference: reads a file of lines, runs the json_parser plugin's rewrite (natively
//! compiled) on every line, and prints one JSON object with the counts and the time spent in the
//! per-line loop (file read excluded, so it compares with the wasm stage alone).
//!
//!   native-json-parser FILE

#[allow(dead_code, clippy::all)]
mod plugin {
    include!(concat!(env!("OUT_DIR"), "/json_parser_plugin.rs"));
}

use std::time::Instant;

fn main() {
    let path = match std::env::args().nth(1) {
        Some(path) => path,
        None => {
            eprintln!("usage: native-json-parser FILE");
            std::process::exit(2);
        }
    };
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("reading {path}: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let mut output: Vec<u8> = Vec::with_capacity(4096);
    let (mut lines, mut rewritten, mut out_bytes) = (0u64, 0u64, 0u64);
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        output.clear();
        if plugin::rewrite(line, &mut output) {
            rewritten += 1;
            out_bytes += output.len() as u64;
        } else {
            out_bytes += line.len() as u64;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"lines\":{lines},\"rewritten\":{rewritten},\"in_bytes\":{},\"out_bytes\":{out_bytes},\"seconds\":{seconds}}}",
        data.len()
    );
}
