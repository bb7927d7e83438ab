//! Live-mode configuration: flags, `CMKSIM_*` environment variables and an optional TOML file,
//! layered as flags > environment > file > defaults, then checked as a whole before anything
//! starts.
//!
//! clap already layers a flag over its environment variable (`#[arg(env = …)]`), so every
//! option is an `Option` there, without a clap default: `None` means "neither flag nor
//! environment", and only then does the file's value (then the default) apply. The file uses the
//! flags' names without the dashes (`time-scale = 60`); unknown keys are refused, so a typo
//! never silently falls back to a default. `--print-config` prints the resolved configuration in
//! the same format, so its output is a valid `--config` file.
//!
//! Checking ([`Settings::check`] and the helpers below) turns every bad input into one clear
//! error before a socket is bound or a directory is written beyond a probe: the command then
//! exits with status 2.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use cmksim_sim::Profile;
use serde::{Deserialize, Serialize};

/// Default ports, the same as inside the simulation (`crates/world`).
pub const KEYVAULT_PORT: u16 = 50051;
pub const STORAGE_PORT: u16 = 50052;
pub const INGEST_PORT: u16 = 50053;

/// The default profile (the first built-in).
pub const DEFAULT_PROFILE: &str = "azure-2020";

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Options every service takes.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonFlags {
    /// A TOML file with the same keys as the flags (`time-scale = 60`); flags and environment
    /// variables win over it.
    #[arg(long, env = "CMKSIM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for durable state (created if missing; must be writable).
    #[arg(long, env = "CMKSIM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Simulated seconds per real second (60: a simulated minute per second). Default 1.
    #[arg(long, env = "CMKSIM_TIME_SCALE", value_name = "X")]
    pub time_scale: Option<f64>,
    /// Wall-clock instant (Unix ms) that counts as the simulated epoch. Give every process the
    /// same value so that they agree on simulated time. Default: now.
    #[arg(
        long,
        env = "CMKSIM_EPOCH",
        value_name = "UNIX_MS",
        allow_negative_numbers = true
    )]
    pub epoch: Option<i64>,
    /// Root seed for ids and other non-key randomness (key material comes from the OS). Default 0.
    #[arg(long, env = "CMKSIM_SEED")]
    pub seed: Option<u64>,
    /// Log format on stderr (the level comes from RUST_LOG, default info). Default text.
    #[arg(long, env = "CMKSIM_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Print the resolved configuration (as a --config file) and exit without serving.
    #[arg(long)]
    pub print_config: bool,
}

/// Behaviour-profile options (storage and ingest).
#[derive(Args, Clone, Debug, Default)]
pub struct ProfileFlags {
    /// Behaviour profile: azure-2020 (default) or azure-current.
    #[arg(long, env = "CMKSIM_PROFILE")]
    pub profile: Option<String>,
    /// A TOML file of profile overrides merged into the profile, as a scenario's [profile]
    /// table (e.g. `[cluster]` then `provisioning_duration = "2m"`).
    #[arg(long, env = "CMKSIM_PROFILE_FILE", value_name = "FILE")]
    pub profile_file: Option<PathBuf>,
    /// One profile override, `section.key=value` (e.g. `cluster.provisioning_duration=2m`);
    /// repeatable; applied after --profile-file. The environment variable takes a
    /// comma-separated list.
    #[arg(
        long = "profile-override",
        env = "CMKSIM_PROFILE_OVERRIDES",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub profile_overrides: Vec<String>,
}

/// Every configuration key, each optional: one layer (flags+environment, or the file), or the
/// resolved configuration (printed by `--print-config`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_override: Option<Vec<String>>,
    /// Storage: the Key Vault (and identity authority) to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyvault: Option<String>,
    /// Ingest: the storage service to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Ingest: where to serve Prometheus `/metrics` (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// `serve all`: per-service addresses (default: `listen` and the next two ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyvault_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_listen: Option<SocketAddr>,
}

macro_rules! layer_fields {
    ($top:ident, $bottom:ident, $($field:ident),*) => {
        Settings { $($field: $top.$field.or($bottom.$field)),* }
    };
}

impl Settings {
    /// The common and profile flags as a layer.
    pub fn from_flags(common: &CommonFlags, profile: Option<&ProfileFlags>) -> Settings {
        Settings {
            data_dir: common.data_dir.clone(),
            time_scale: common.time_scale,
            epoch: common.epoch,
            seed: common.seed,
            log_format: common.log_format,
            profile: profile.and_then(|p| p.profile.clone()),
            profile_file: profile.and_then(|p| p.profile_file.clone()),
            // An empty CMKSIM_PROFILE_OVERRIDES (as compose passes an unset one) means none.
            profile_override: profile
                .map(|p| {
                    p.profile_overrides
                        .iter()
                        .filter(|o| !o.trim().is_empty())
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .filter(|o| !o.is_empty()),
            ..Settings::default()
        }
    }

    /// Reads a `--config` file.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// `self` over `below`: each key from `self` when set, else from `below`.
    pub fn over(self, below: Settings) -> Settings {
        let top = self;
        layer_fields!(
            top,
            below,
            listen,
            data_dir,
            time_scale,
            epoch,
            seed,
            log_format,
            profile,
            profile_file,
            profile_override,
            keyvault,
            storage,
            metrics_listen,
            keyvault_listen,
            storage_listen,
            ingest_listen
        )
    }

    /// The time scale, checked: finite and positive.
    pub fn time_scale(&self) -> anyhow::Result<f64> {
        let scale = self.time_scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            bail!("--time-scale must be a positive number (simulated seconds per real second), got {scale}");
        }
        Ok(scale)
    }

    /// The behaviour profile with its overrides (file, then `--profile-override`), checked.
    pub fn profile(&self) -> anyhow::Result<Profile> {
        let name = self.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
        let mut overrides = match &self.profile_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the profile file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("profile file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for entry in self.profile_override.iter().flatten() {
            apply_override(&mut overrides, entry)?;
        }
        let overrides = (!overrides.is_empty()).then_some(&overrides);
        Ok(Profile::builtin_with_overrides(name, overrides)?)
    }

    /// The data directory, required, created if missing and checked writable.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self
            .data_dir
            .clone()
            .context("--data-dir (or CMKSIM_DATA_DIR, or data-dir in --config) is required")?;
        check_writable_dir(&dir)?;
        Ok(dir)
    }
}

/// Merges one `section.key=value` into an overrides table. The value is read as TOML (`3`,
/// `true`, `"x"`); anything that is not TOML is taken as a string (`2m`, `accept-and-drop`).
pub fn apply_override(table: &mut toml::Table, entry: &str) -> anyhow::Result<()> {
    let (path, raw) = entry
        .split_once('=')
        .with_context(|| format!("--profile-override {entry:?}: expected KEY=VALUE"))?;
    let path = path.trim();
    let raw = raw.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        bail!("--profile-override {entry:?}: the key must be like cluster.provisioning_duration");
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().expect("split yields at least one key");
    let mut current = table;
    for key in keys {
        let slot = current
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match slot {
            toml::Value::Table(t) => t,
            _ => bail!("--profile-override {entry:?}: {key} is not a table"),
        };
    }
    current.insert(last.to_string(), value);
    Ok(())
}

/// Creates `dir` if needed and proves it writable by writing and removing a probe file.
pub fn check_writable_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("data directory {} cannot be created", dir.display()))?;
    let probe = dir.join(".cmksim-write-probe");
    std::fs::write(&probe, b"probe")
        .with_context(|| format!("data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Checks a service URL (`http://host:port` or `https://…`) and returns it normalised.
pub fn check_url(flag: &str, url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url.parse().with_context(|| {
        format!("{flag} {url:?} is not a valid URL (expected http://HOST:PORT)")
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => bail!("{flag} {url:?}: the URL must start with http:// or https://"),
    }
    let Some(authority) = uri.authority() else {
        bail!("{flag} {url:?}: the URL has no host");
    };
    if authority.host().is_empty() {
        bail!("{flag} {url:?}: the URL has no host");
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        bail!("{flag} {url:?}: a service URL has no path");
    }
    tonic::transport::Endpoint::from_shared(url.to_string())
        .with_context(|| format!("{flag} {url:?} is not a usable endpoint"))?;
    Ok(url.trim_end_matches('/').to_string())
}

/// The URL a local client uses to reach a server bound to `addr` (`0.0.0.0` becomes loopback).
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_take_the_top_value_per_key() {
        let top = Settings {
            time_scale: Some(60.0),
            ..Settings::default()
        };
        let file = Settings {
            time_scale: Some(1.0),
            seed: Some(9),
            ..Settings::default()
        };
        let merged = top.over(file);
        assert_eq!(merged.time_scale, Some(60.0));
        assert_eq!(merged.seed, Some(9));
    }

    #[test]
    fn overrides_parse_toml_values_or_strings() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "cluster.provisioning_duration=2m").unwrap();
        apply_override(&mut t, "cluster.link_operations_max = 5").unwrap();
        apply_override(&mut t, "key_access.versionless_keys=true").unwrap();
        let c = t["cluster"].as_table().unwrap();
        assert_eq!(c["provisioning_duration"].as_str(), Some("2m"));
        assert_eq!(c["link_operations_max"].as_integer(), Some(5));
        assert_eq!(t["key_access"]["versionless_keys"].as_bool(), Some(true));
        assert!(apply_override(&mut t, "nokey").is_err());
        assert!(apply_override(&mut t, "a..b=1").is_err());
    }

    #[test]
    fn profile_with_overrides_is_checked() {
        let s = Settings {
            profile_override: Some(vec!["cluster.provisioning_duration=2m".into()]),
            ..Settings::default()
        };
        let p = s.profile().unwrap();
        assert_eq!(p.cluster.provisioning_duration.as_secs(), 120);
        let bad = Settings {
            profile_override: Some(vec!["cluster.no_such_key=1".into()]),
            ..Settings::default()
        };
        assert!(bad.profile().is_err());
        let unknown = Settings {
            profile: Some("azure-1999".into()),
            ..Settings::default()
        };
        assert!(unknown.profile().is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            check_url("--keyvault", "http://127.0.0.1:50051/").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert!(check_url("--keyvault", "127.0.0.1:50051").is_err());
        assert!(check_url("--keyvault", "http://").is_err());
        assert!(check_url("--keyvault", "ftp://x:1").is_err());
        assert!(check_url("--keyvault", "http://a b").is_err());
    }

    #[test]
    fn time_scale_must_be_positive() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let s = Settings {
                time_scale: Some(bad),
                ..Settings::default()
            };
            assert!(s.time_scale().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_keys_are_the_flag_names() {
        let s: Settings = toml::from_str(
            "listen = \"0.0.0.0:7001\"\ntime-scale = 60\nepoch = 1700000000000\nprofile-override = [\"cluster.provisioning_duration=2m\"]\nlog-format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(s.time_scale, Some(60.0));
        assert_eq!(s.log_format, Some(LogFormat::Json));
        assert!(toml::from_str::<Settings>("time_scale = 60").is_err());
    }
}
