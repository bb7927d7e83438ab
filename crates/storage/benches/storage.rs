//! `cargo bench -p cmksim-storage --bench storage [-- --json] [-- --small] [-- --dir DIR]`:
//! runs the data-plane benchmark (the same code as `cmksim bench storage`) in release mode.

use std::path::PathBuf;

use cmksim_storage::data::bench::{self, BenchConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let small = args.iter().any(|a| a == "--small");
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let config = if small {
        BenchConfig::small(&dir)
    } else {
        BenchConfig::cli_default(&dir)
    };
    match bench::run(&config) {
        Ok(report) if json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        ),
        Ok(report) => print!("{}", report.table()),
        Err(e) => {
            eprintln!("storage bench failed: {e}");
            std::process::exit(1);
        }
    }
}
