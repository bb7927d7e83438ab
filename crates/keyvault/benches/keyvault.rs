//! `cargo bench -p cmksim-keyvault --bench keyvault [-- --json] [-- --clients N]`: runs the Key
//! Vault unwrapKey benchmark (the same code as `cmksim bench keyvault`) in release mode, without
//! building the whole `cmksim` binary.

use cmksim_keyvault::bench::{self, KeyVaultBenchOptions, CLIENTS_MAX};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let clients = args
        .iter()
        .position(|a| a == "--clients")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(KeyVaultBenchOptions::default().clients)
        .clamp(1, CLIENTS_MAX);
    let report = bench::run(&KeyVaultBenchOptions {
        clients,
        ..Default::default()
    });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", report.to_table());
    }
}
