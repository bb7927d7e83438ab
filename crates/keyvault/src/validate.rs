//! Input validation: names, retention, permissions, key operations, key parameters.
//!
//! Every rule Azure enforces on the way in, as pure functions returning the typed value or the
//! [`KvError`] Azure would answer. Validating everything before touching state is what keeps a
//! refused request from leaving half a change behind.

use std::collections::{BTreeMap, BTreeSet};

use cmksim_sim::rules;

use crate::errors::KvError;
use crate::model::{KeyOp, KeyPermission, KeyType};

/// Soft-delete retention bounds (days).
pub const RETENTION_MIN_DAYS: u32 = 7;
pub const RETENTION_MAX_DAYS: u32 = 90;
pub const RETENTION_DEFAULT_DAYS: u32 = 90;
/// RSA sizes Key Vault offers.
pub const RSA_KEY_SIZES_BITS: [u32; 3] = [2048, 3072, 4096];
pub const RSA_DEFAULT_KEY_SIZE_BITS: u32 = 2048;
/// Key names: 1–127 characters, alphanumerics and hyphens (the rule is [`rules::is_valid_key_name`]).
pub const KEY_NAME_MAX_CHARS: usize = rules::KEY_NAME_LEN_MAX_CHARS;
/// At most this many tags on a key (Azure's limit is 15).
pub const MAX_TAGS: usize = 15;
pub const MAX_TAG_NAME_CHARS: usize = 512;
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// Longest location, subscription or resource-group string accepted.
pub const MAX_TEXT_CHARS: usize = 256;

/// Azure's vault-name rule: 3–24 characters, alphanumerics and hyphens, starting with a letter,
/// ending with a letter or digit, no consecutive hyphens.
pub fn vault_name(name: &str) -> Result<(), KvError> {
    let ok = rules::is_valid_vault_name(name);
    if ok {
        Ok(())
    } else {
        Err(KvError::VaultNameNotValid {
            name: name.to_string(),
        })
    }
}

/// Key names: 1–127 alphanumerics and hyphens.
pub fn key_name(name: &str) -> Result<(), KvError> {
    let ok = rules::is_valid_key_name(name);
    if ok {
        Ok(())
    } else {
        Err(KvError::BadParameter {
            message: format!("The request URI contains an invalid name: {name}"),
        })
    }
}

/// A key version in a request: empty (newest) or 32 lowercase hex characters.
pub fn key_version(version: &str) -> Result<(), KvError> {
    if version.is_empty() || cmksim_sim::ids::is_key_version(version) {
        Ok(())
    } else {
        Err(KvError::BadParameter {
            message: format!("The request URI contains an invalid version: {version}"),
        })
    }
}

/// Retention in days, 7–90.
pub fn retention_days(days: u32) -> Result<u32, KvError> {
    if (RETENTION_MIN_DAYS..=RETENTION_MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(KvError::RetentionOutOfRange { days })
    }
}

/// A free-text field (location, subscription, resource group).
pub fn text(field: &str, value: &str, required: bool) -> Result<(), KvError> {
    if required && value.trim().is_empty() {
        return Err(KvError::BadRequest {
            message: format!("The property \"{field}\" is required."),
        });
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(KvError::BadRequest {
            message: format!(
                "The property \"{field}\" is longer than {MAX_TEXT_CHARS} characters."
            ),
        });
    }
    Ok(())
}

/// Parses a list of key permission names; unknown names are refused, naming them.
pub fn permissions(names: &[String]) -> Result<BTreeSet<KeyPermission>, KvError> {
    let mut out = BTreeSet::new();
    for name in names.iter().take(KeyPermission::ALL.len() * 2) {
        match KeyPermission::parse(name) {
            Some(p) => {
                out.insert(p);
            }
            None => {
                return Err(KvError::BadRequest {
                    message: format!(
                        "Invalid value '{name}' in accessPolicies.permissions.keys. Valid values are: {}.",
                        KeyPermission::ALL
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        }
    }
    if names.len() > KeyPermission::ALL.len() * 2 {
        return Err(KvError::BadRequest {
            message: "Too many key permissions.".into(),
        });
    }
    Ok(out)
}

/// Parses key operations for a key type; empty means the type's defaults.
pub fn key_ops(names: &[String], kty: KeyType) -> Result<Vec<KeyOp>, KvError> {
    if names.is_empty() {
        return Ok(kty.default_ops());
    }
    let mut out: Vec<KeyOp> = Vec::new();
    for name in names.iter().take(KeyOp::ALL.len() * 2) {
        let op = KeyOp::parse(name).ok_or_else(|| KvError::BadParameter {
            message: format!("Invalid key operation: {name}"),
        })?;
        if !kty.supported_ops().contains(&op) {
            return Err(KvError::BadParameter {
                message: format!("Key operation {op} is not supported by key type {kty}."),
            });
        }
        if !out.contains(&op) {
            out.push(op);
        }
    }
    if names.len() > KeyOp::ALL.len() * 2 {
        return Err(KvError::BadParameter {
            message: "Too many key operations.".into(),
        });
    }
    Ok(out)
}

/// Parses a key type.
pub fn key_type(kty: &str) -> Result<KeyType, KvError> {
    KeyType::parse(kty).ok_or_else(|| KvError::BadParameter {
        message: format!("Invalid kty '{kty}'. Supported key types: RSA, RSA-HSM, EC, EC-HSM."),
    })
}

/// RSA size (0 = default) or EC curve ("" = P-256); returns the RSA size in bits (0 for EC).
pub fn key_params(kty: KeyType, key_size_bits: u32, curve: &str) -> Result<u32, KvError> {
    if kty.is_rsa() {
        if !curve.is_empty() {
            return Err(KvError::BadParameter {
                message: format!("The parameter crv is not allowed for key type {kty}."),
            });
        }
        let size = if key_size_bits == 0 {
            RSA_DEFAULT_KEY_SIZE_BITS
        } else {
            key_size_bits
        };
        if !RSA_KEY_SIZES_BITS.contains(&size) {
            return Err(KvError::BadParameter {
                message: format!(
                    "Invalid key size {size}. Supported RSA key sizes: 2048, 3072, 4096."
                ),
            });
        }
        Ok(size)
    } else {
        if key_size_bits != 0 {
            return Err(KvError::BadParameter {
                message: format!("The parameter key_size is not allowed for key type {kty}."),
            });
        }
        if !(curve.is_empty() || curve == "P-256") {
            return Err(KvError::BadParameter {
                message: format!("Invalid curve '{curve}'. Supported curves: P-256."),
            });
        }
        Ok(0)
    }
}

/// Tags: at most 15, bounded lengths.
pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), KvError> {
    if tags.len() > MAX_TAGS {
        return Err(KvError::BadParameter {
            message: format!("A key can have at most {MAX_TAGS} tags."),
        });
    }
    for (name, value) in tags {
        if name.is_empty()
            || name.chars().count() > MAX_TAG_NAME_CHARS
            || value.chars().count() > MAX_TAG_VALUE_CHARS
        {
            return Err(KvError::BadParameter {
                message: format!("Invalid tag '{name}'."),
            });
        }
    }
    Ok(())
}

/// nbf must be before exp.
pub fn validity(nbf_ms: Option<i64>, exp_ms: Option<i64>) -> Result<(), KvError> {
    match (nbf_ms, exp_ms) {
        (Some(nbf), Some(exp)) if nbf >= exp => Err(KvError::BadParameter {
            message: "The key's nbf must be earlier than its exp.".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_follow_azure_rule() {
        for ok in ["abc", "kv-cmk-01", "A1b", "a23456789012345678901234"] {
            assert!(vault_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "1abc",
            "abc-",
            "ab--c",
            "a_bc",
            "a234567890123456789012345",
            "",
            "abc.d",
        ] {
            assert!(vault_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn permissions_and_ops_are_validated() {
        let p = permissions(&["get".into(), "UnwrapKey".into(), "wrapKey".into()]).unwrap();
        assert!(p.contains(&KeyPermission::UnwrapKey));
        assert!(permissions(&["gett".into()]).is_err());
        assert_eq!(
            key_ops(&[], KeyType::Ec).unwrap(),
            vec![KeyOp::Sign, KeyOp::Verify]
        );
        assert!(key_ops(&["wrapKey".into()], KeyType::Ec).is_err());
        assert_eq!(key_params(KeyType::Rsa, 0, "").unwrap(), 2048);
        assert!(key_params(KeyType::Rsa, 1024, "").is_err());
        assert!(key_params(KeyType::Ec, 0, "P-384").is_err());
        assert!(retention_days(6).is_err() && retention_days(91).is_err());
        assert!(retention_days(7).is_ok() && retention_days(90).is_ok());
    }
}
