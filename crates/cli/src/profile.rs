//! `cmksim profile [NAME]`: prints a behaviour profile as TOML, so a person can see every
//! timing and limit the simulator will use (the files in `sim-config/` carry the sources).

use std::process::ExitCode;

use clap::Args;
use cmksim_sim::profile::{Profile, BUILTIN_PROFILES};

#[derive(Args)]
pub struct ProfileArgs {
    /// Profile name: azure-2020 (default), azure-2021 or azure-current.
    #[arg(default_value = "azure-2020")]
    name: String,
}

pub fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let profile = Profile::builtin(&args.name)?;
    let text = toml::to_string(&profile)?;
    outln!("# built-in profiles: {}", BUILTIN_PROFILES.join(", "));
    out!("{text}");
    Ok(ExitCode::SUCCESS)
}
