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
//!
//! TLS (`--tls`): a server serves TLS with a given certificate and key (`--tls-cert`,
//! `--tls-key`) or with a self-signed certificate made by rcgen on first start and kept as
//! `tls/cert.pem` and `tls/key.pem` (mode 0600) in its data directory (or `--tls-dir`), reused on
//! every later start so that clients keep trusting it. A client side (storage → Key Vault,
//! ingest → storage) reaching an `https://` URL trusts the PEM certificates of `--tls-ca`.
//! [`ServerTls`] is the resolved choice; [`load_server_tls`] reads or makes the files, after
//! `--print-config` and before anything listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use cmksim_sim::net::{TlsClient, TlsError};
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
    /// Behaviour profile: azure-2020 (default), azure-2021 or azure-current.
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

/// Server TLS options (every service).
#[derive(Args, Clone, Debug, Default)]
pub struct TlsFlags {
    /// Serve TLS (https://), with --tls-cert/--tls-key or else a self-signed certificate kept
    /// in DATA_DIR/tls (or --tls-dir). `--tls=false` turns it off over the environment or the
    /// config file.
    #[arg(
        long,
        env = "CMKSIM_TLS",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tls: Option<bool>,
    /// The server certificate (chain), PEM; needs --tls-key; turns TLS on.
    #[arg(long, env = "CMKSIM_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(long, env = "CMKSIM_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Where the self-signed certificate is kept (cert.pem, key.pem). Default DATA_DIR/tls;
    /// required for `serve ingest --tls` without --data-dir.
    #[arg(long, env = "CMKSIM_TLS_DIR", value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// An extra name or IP address for the self-signed certificate (it always has localhost,
    /// 127.0.0.1 and ::1); repeatable. The environment variable takes a comma-separated list.
    #[arg(
        long = "tls-san",
        env = "CMKSIM_TLS_SANS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub tls_sans: Vec<String>,
}

/// The client TLS option (services that call another service).
#[derive(Args, Clone, Debug, Default)]
pub struct TlsCaFlag {
    /// PEM certificate(s) to trust for https:// upstream URLs: for a self-signed server, its
    /// tls/cert.pem. Only these are trusted (no system roots).
    #[arg(long, env = "CMKSIM_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
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
    /// `serve rest`: the ingestion front end to use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest: Option<String>,
    /// `serve all` and `serve rest`: where the HTTPS front door listens (off when absent for
    /// `serve all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_listen: Option<SocketAddr>,
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
    /// Serve TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_dir: Option<PathBuf>,
    /// Extra SANs of the self-signed certificate (`tls-san = ["cmksim.local"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_san: Option<Vec<String>>,
    /// The certificates a client side trusts for https:// upstreams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
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

    /// `self` with the TLS flags set (each only when given).
    pub fn with_tls_flags(self, tls: &TlsFlags, ca: Option<&TlsCaFlag>) -> Settings {
        Settings {
            tls: tls.tls,
            tls_cert: tls.tls_cert.clone(),
            tls_key: tls.tls_key.clone(),
            tls_dir: tls.tls_dir.clone(),
            tls_san: Some(
                tls.tls_sans
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
            .filter(|s| !s.is_empty()),
            tls_ca: ca.and_then(|c| c.tls_ca.clone()),
            ..self
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
            ingest,
            rest_listen,
            metrics_listen,
            keyvault_listen,
            storage_listen,
            ingest_listen,
            tls,
            tls_cert,
            tls_key,
            tls_dir,
            tls_san,
            tls_ca
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

/// Where a server's TLS certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTls {
    /// A self-signed certificate for `sans`, kept in `dir` (made on the first start, reused on
    /// later ones).
    SelfSigned { dir: PathBuf, sans: Vec<String> },
    /// A given certificate (chain) and private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// The names every self-signed certificate has, before any `--tls-san`: the loopback names,
/// and the Azure hosts the HTTPS front door answers for through its CONNECT proxy (a client
/// that reaches `https://contoso-kv.vault.azure.net` through `HTTPS_PROXY` checks the name
/// against this certificate). `*.localhost` is listed for clients that accept a wildcard over a
/// single label; OpenSSL (Python) does not, so Python reaches vaults through the proxy.
pub const DEFAULT_SANS: [&str; 11] = [
    "localhost",
    "127.0.0.1",
    "::1",
    "*.localhost",
    "*.vault.azure.net",
    "management.azure.com",
    "login.microsoftonline.com",
    "monitor.azure.com",
    "api.loganalytics.io",
    "api.loganalytics.azure.com",
    "*.ingest.monitor.azure.com",
];

impl Settings {
    /// The server TLS choice, checked (`None`: TLS off), and recorded in `self` for
    /// `--print-config`. TLS is on with `--tls`, or when a certificate is given and `tls` is not
    /// set to false. A self-signed certificate lives in `--tls-dir`, else in `default_dir`
    /// (the service's data directory + `/tls`); `service` names the command in the error when
    /// there is neither.
    pub fn server_tls(
        &mut self,
        service: &str,
        default_dir: Option<PathBuf>,
    ) -> anyhow::Result<Option<ServerTls>> {
        let given = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (Some(_), None) => bail!(
                "--tls-cert needs --tls-key: give both, or neither for a self-signed certificate"
            ),
            (None, Some(_)) => bail!(
                "--tls-key needs --tls-cert: give both, or neither for a self-signed certificate"
            ),
            (None, None) => None,
        };
        let on = *self.tls.get_or_insert(given.is_some());
        if !on {
            return Ok(None);
        }
        self.tls_source(service, given, default_dir).map(Some)
    }

    /// The certificate of the HTTPS front door, which is TLS whatever `--tls` says (the SDKs
    /// send bearer tokens only over https): the given pair, or the self-signed certificate
    /// `--tls` would use.
    pub fn rest_tls(
        &mut self,
        service: &str,
        default_dir: Option<PathBuf>,
    ) -> anyhow::Result<ServerTls> {
        let given = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            _ => None,
        };
        self.tls_source(service, given, default_dir)
    }

    /// The given pair, or a self-signed certificate in `--tls-dir` or `default_dir`.
    fn tls_source(
        &mut self,
        service: &str,
        given: Option<(PathBuf, PathBuf)>,
        default_dir: Option<PathBuf>,
    ) -> anyhow::Result<ServerTls> {
        if let Some((cert, key)) = given {
            return Ok(ServerTls::Files { cert, key });
        }
        let dir = match (&self.tls_dir, default_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => dir,
            (None, None) => bail!(
                "serve {service} --tls needs --tls-dir DIR (where its self-signed certificate is \
                 kept) or --tls-cert FILE with --tls-key FILE"
            ),
        };
        self.tls_dir = Some(dir.clone());
        let mut sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
        for san in self.tls_san.iter().flatten() {
            check_san(san)?;
            if !sans.contains(san) {
                sans.push(san.clone());
            }
        }
        Ok(ServerTls::SelfSigned { dir, sans })
    }

    /// What a client side trusts for the upstream `url` given as `flag`: `None` for an
    /// `http://` URL without `--tls-ca`; an `https://` URL requires `--tls-ca`.
    pub fn client_trust(&self, flag: &str, url: &str) -> anyhow::Result<Option<PathBuf>> {
        if url.starts_with("https://") && self.tls_ca.is_none() {
            bail!(
                "{flag} {url}: an https:// URL needs --tls-ca FILE (the PEM certificate to trust; \
                 for a self-signed server, its tls/cert.pem)"
            );
        }
        Ok(self.tls_ca.clone())
    }
}

/// A SAN must be an IP address or a DNS name (letters, digits, `-`, `.`, a leading `*.`).
fn check_san(san: &str) -> anyhow::Result<()> {
    if san.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = san.strip_prefix("*.").unwrap_or(san);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !ok {
        bail!("--tls-san {san:?}: not a DNS name or an IP address");
    }
    Ok(())
}

/// A server's TLS, ready: the rustls configuration, and the certificate PEM (what a client of a
/// self-signed server trusts).
pub struct TlsMaterial {
    pub server: Arc<tokio_rustls::rustls::ServerConfig>,
    pub cert_pem: Vec<u8>,
}

/// Reads the given certificate and key, or reads (or, the first time, makes) the self-signed
/// pair; every error names the file.
pub fn load_server_tls(tls: &ServerTls) -> anyhow::Result<TlsMaterial> {
    let (cert, key) = match tls {
        ServerTls::Files { cert, key } => (cert.clone(), key.clone()),
        ServerTls::SelfSigned { dir, sans } => {
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            match (cert.exists(), key.exists()) {
                (true, true) => {
                    tracing::info!(cert = %cert.display(), "TLS: reusing the self-signed certificate");
                }
                (false, false) => {
                    make_self_signed(dir, &cert, &key, sans)?;
                    tracing::info!(cert = %cert.display(), ?sans, "TLS: made a self-signed certificate");
                }
                (true, false) => bail!(
                    "TLS: {} exists without {}: remove it to make a new self-signed certificate",
                    cert.display(),
                    key.display()
                ),
                (false, true) => bail!(
                    "TLS: {} exists without {}: remove it to make a new self-signed certificate",
                    key.display(),
                    cert.display()
                ),
            }
            (cert, key)
        }
    };
    let cert_pem = std::fs::read(&cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?;
    let key_pem = std::fs::read(&key)
        .with_context(|| format!("cannot read the TLS private key {}", key.display()))?;
    let server = cmksim_sim::net::tls_server_config(&cert_pem, &key_pem).map_err(|e| match e {
        TlsError::Certificate(r) => anyhow::anyhow!("TLS certificate {}: {r}", cert.display()),
        TlsError::PrivateKey(r) => anyhow::anyhow!("TLS private key {}: {r}", key.display()),
        TlsError::Pair(r) => {
            anyhow::anyhow!(
                "TLS certificate {} and key {}: {r}",
                cert.display(),
                key.display()
            )
        }
    })?;
    Ok(TlsMaterial { server, cert_pem })
}

/// What a client trusts: the PEM file `ca`.
pub fn load_trust(ca: &Path) -> anyhow::Result<TlsClient> {
    TlsClient::trusting_file(ca).map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))
}

/// Makes a self-signed certificate for `sans` and writes it (the key first, mode 0600); each
/// file is written whole under a temporary name and renamed, so a crash leaves no half file.
fn make_self_signed(dir: &Path, cert: &Path, key: &Path, sans: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("TLS directory {} cannot be created", dir.display()))?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec())
        .with_context(|| format!("TLS: names {sans:?}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cmksim self-signed");
    let signing_key = rcgen::KeyPair::generate().context("TLS: generating a key")?;
    let certificate = params
        .self_signed(&signing_key)
        .context("TLS: signing the certificate")?;
    write_file(key, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("pem.tmp");
    // A stale temporary file from an interrupted write would make `create_new` refuse.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove the stale {}", tmp.display()))
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
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
    // The stores delete files as well as write them (sled's segments, buffer entries).
    std::fs::remove_file(&probe).with_context(|| {
        format!(
            "data directory {}: its probe file cannot be removed",
            dir.display()
        )
    })
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
    service_url(addr, false)
}

/// [`local_url`], `https://` when the server serves TLS.
pub fn service_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
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
    fn server_tls_is_off_by_default_and_on_with_a_flag_or_a_certificate() {
        let mut off = Settings::default();
        assert_eq!(
            off.server_tls("keyvault", Some("/d/tls".into())).unwrap(),
            None
        );
        assert_eq!(off.tls, Some(false), "resolved for --print-config");

        let mut on = Settings {
            tls: Some(true),
            tls_san: Some(vec!["cmksim.test".into(), "localhost".into()]),
            ..Settings::default()
        };
        let Some(ServerTls::SelfSigned { dir, sans }) =
            on.server_tls("keyvault", Some("/d/tls".into())).unwrap()
        else {
            panic!("self-signed expected");
        };
        assert_eq!(dir, PathBuf::from("/d/tls"));
        let mut expected: Vec<&str> = DEFAULT_SANS.to_vec();
        expected.push("cmksim.test");
        assert_eq!(sans, expected, "the defaults, then each extra name once");
        assert_eq!(on.tls_dir, Some(PathBuf::from("/d/tls")));

        let mut given = Settings {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Settings::default()
        };
        assert_eq!(
            given.server_tls("storage", None).unwrap(),
            Some(ServerTls::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(given.tls, Some(true));
    }

    #[test]
    fn server_tls_refuses_half_a_pair_a_missing_directory_and_a_bad_name() {
        let mut half = Settings {
            tls_cert: Some("c.pem".into()),
            ..Settings::default()
        };
        let e = half.server_tls("keyvault", None).unwrap_err().to_string();
        assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
        let mut no_dir = Settings {
            tls: Some(true),
            ..Settings::default()
        };
        let e = no_dir.server_tls("ingest", None).unwrap_err().to_string();
        assert!(e.contains("--tls-dir"), "{e}");
        for bad in ["a b", "", "-x.test", "x..test"] {
            let mut s = Settings {
                tls: Some(true),
                tls_san: Some(vec![bad.into()]),
                ..Settings::default()
            };
            assert!(
                s.server_tls("keyvault", Some("/d".into())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_https_upstream_needs_a_ca() {
        let s = Settings::default();
        assert!(s
            .client_trust("--keyvault", "http://127.0.0.1:1")
            .unwrap()
            .is_none());
        let e = s
            .client_trust("--keyvault", "https://127.0.0.1:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tls-ca"), "{e}");
        let with_ca = Settings {
            tls_ca: Some("ca.pem".into()),
            ..Settings::default()
        };
        assert_eq!(
            with_ca
                .client_trust("--keyvault", "https://127.0.0.1:1")
                .unwrap(),
            Some(PathBuf::from("ca.pem"))
        );
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = ServerTls::SelfSigned {
            dir: dir.path().join("tls"),
            sans: DEFAULT_SANS.iter().map(|s| s.to_string()).collect(),
        };
        let first = load_server_tls(&tls).unwrap();
        let cert = dir.path().join("tls/cert.pem");
        let key = dir.path().join("tls/key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let again = load_server_tls(&tls).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem, "reused, not remade");
        assert_eq!(first.server.alpn_protocols, vec![b"h2".to_vec()]);
        // The pair also works as a given one; a half pair on disk is refused.
        let files = ServerTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        assert_eq!(load_server_tls(&files).unwrap().cert_pem, first.cert_pem);
        std::fs::remove_file(&key).unwrap();
        let e = load_server_tls(&tls).err().unwrap().to_string();
        assert!(e.contains("cert.pem exists without"), "{e}");
        let bad = ServerTls::Files {
            cert: key.clone(),
            key: cert.clone(),
        };
        let e = format!("{:#}", load_server_tls(&bad).err().unwrap());
        assert!(e.contains(&key.display().to_string()), "{e}");
        std::fs::write(&key, "not pem").unwrap();
        let garbled = ServerTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        let e = format!("{:#}", load_server_tls(&garbled).err().unwrap());
        assert!(
            e.contains("TLS private key") && e.contains("key.pem"),
            "{e}"
        );
    }

    #[test]
    fn file_keys_are_the_flag_names() {
        let s: Settings = toml::from_str(
            "listen = \"0.0.0.0:7001\"\ntime-scale = 60\nepoch = 1700000000000\nprofile-override = [\"cluster.provisioning_duration=2m\"]\nlog-format = \"json\"\ntls = true\ntls-san = [\"cmksim.test\"]\ntls-ca = \"ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(s.tls, Some(true));
        assert_eq!(s.tls_san, Some(vec!["cmksim.test".to_string()]));
        assert_eq!(s.tls_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(s.time_scale, Some(60.0));
        assert_eq!(s.log_format, Some(LogFormat::Json));
        assert!(toml::from_str::<Settings>("time_scale = 60").is_err());
    }
}
