//! Runs the Key Vault unwrapKey benchmark once and prints the table and the JSON report:
//! `cargo run --release -p cmksim-keyvault --example bench_keyvault`.

fn main() {
    let report =
        cmksim_keyvault::bench::run(&cmksim_keyvault::bench::KeyVaultBenchOptions::default());
    print!("{}", report.to_table());
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("report serialises")
    );
}
