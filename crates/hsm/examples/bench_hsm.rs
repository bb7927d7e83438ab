//! Runs the HSM benchmark once and prints the table and the JSON report:
//! `cargo run --release -p cmksim-hsm --example bench_hsm`.

fn main() {
    let report = cmksim_hsm::bench::run(&cmksim_hsm::bench::BenchOptions::default());
    print!("{}", report.to_table());
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("report serialises")
    );
}
