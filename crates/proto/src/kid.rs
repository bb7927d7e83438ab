//! Key Vault key identifiers (`kid`s): the one parser every service uses.
//!
//! A kid is `https://{vault}.vault.azure.net/keys/{name}[/{version}]`. Storage records the
//! base (without the version) beside the version in its wrapped-AEK record and block headers;
//! the front end reports a stored record's key as base + version; the key loop needs the vault
//! and key names back from a stored kid.

/// The DNS suffix of a vault's host.
pub const VAULT_HOST_SUFFIX: &str = ".vault.azure.net";

/// A parsed kid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    /// The vault's name (the host's first label), lower case.
    pub vault: String,
    pub name: String,
    /// Empty for a versionless kid.
    pub version: String,
}

impl KeyId {
    /// Parses `https://{vault}.vault.azure.net/keys/{name}[/{version}]` (a trailing slash is
    /// ignored). `None` for anything else.
    pub fn parse(kid: &str) -> Option<KeyId> {
        let rest = kid.trim_end_matches('/').strip_prefix("https://")?;
        let mut parts = rest.split('/');
        let vault = vault_of_host(parts.next()?)?;
        if parts.next()? != "keys" {
            return None;
        }
        let name = parts.next().filter(|n| !n.is_empty())?.to_string();
        let version = parts.next().unwrap_or_default().to_string();
        if parts.next().is_some() {
            return None;
        }
        Some(KeyId {
            vault,
            name,
            version,
        })
    }

    /// `https://{vault}.vault.azure.net/keys/{name}`: the kid without its version.
    pub fn base(&self) -> String {
        kid_base(&self.vault, &self.name)
    }

    /// The full kid (the base when versionless).
    pub fn kid(&self) -> String {
        if self.version.is_empty() {
            self.base()
        } else {
            format!("{}/{}", self.base(), self.version)
        }
    }
}

/// The version at the end of `https://{vault}.vault.azure.net/keys/{name}/{version}`; empty for
/// a versionless kid or anything that is not a kid.
pub fn version_of(kid: &str) -> String {
    KeyId::parse(kid).map(|k| k.version).unwrap_or_default()
}

/// `https://{vault}.vault.azure.net/keys/{name}`.
pub fn kid_base(vault: &str, name: &str) -> String {
    format!("https://{vault}{VAULT_HOST_SUFFIX}/keys/{name}")
}

/// The vault of `https://{vault}.vault.azure.net[/...]`, lower case.
pub fn vault_of_uri(uri: &str) -> Option<String> {
    vault_of_host(uri.strip_prefix("https://")?.split('/').next()?)
}

fn vault_of_host(host: &str) -> Option<String> {
    let vault = host
        .to_ascii_lowercase()
        .strip_suffix(VAULT_HOST_SUFFIX)?
        .to_string();
    (!vault.is_empty() && !vault.contains('.')).then_some(vault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_of_reads_the_last_segment_of_a_kid_only() {
        assert_eq!(
            version_of("https://kv.vault.azure.net/keys/k/abc123"),
            "abc123"
        );
        assert_eq!(version_of("https://kv.vault.azure.net/keys/k"), "");
        assert_eq!(version_of("kv/k/abc123"), "");
    }

    #[test]
    fn kids_parse_with_and_without_a_version() {
        let k = KeyId::parse("https://KV1.vault.azure.net/keys/k1/0123abcd").unwrap();
        assert_eq!(
            (k.vault.as_str(), k.name.as_str(), k.version.as_str()),
            ("kv1", "k1", "0123abcd")
        );
        assert_eq!(k.base(), "https://kv1.vault.azure.net/keys/k1");
        assert_eq!(k.kid(), "https://kv1.vault.azure.net/keys/k1/0123abcd");
        let v = KeyId::parse("https://kv1.vault.azure.net/keys/k1/").unwrap();
        assert_eq!(v.version, "");
        assert_eq!(v.kid(), v.base());
        for bad in [
            "kv1/k1",
            "https://kv1.vault.azure.net/secrets/k1",
            "https://kv1.example.com/keys/k1",
            "https://kv1.vault.azure.net/keys/k1/v/extra",
            "https://kv1.vault.azure.net/keys",
        ] {
            assert_eq!(KeyId::parse(bad), None, "{bad}");
        }
        assert_eq!(
            vault_of_uri("https://KV1.vault.azure.net/"),
            Some("kv1".into())
        );
    }
}
