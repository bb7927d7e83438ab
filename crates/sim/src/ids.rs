//! Identifiers drawn from a seeded stream: GUIDs (tenant ids, principal ids, cluster ids,
//! operation ids) and Key Vault key versions (32 lowercase hex characters). Drawing them from a
//! [`crate::RandomSource`] rather than a global generator keeps them reproducible by seed.

use rand::RngCore;

/// A random (version 4) GUID in its lowercase 8-4-4-4-12 form.
pub fn guid(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A Key Vault key version: 32 lowercase hex characters.
pub fn key_version(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// True when `s` has the shape of a key version (32 lowercase hex characters).
pub fn is_key_version(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True when `s` has the 8-4-4-4-12 hex shape of a GUID (either case).
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeedTree;

    #[test]
    fn guid_shape_and_determinism() {
        let mut a = SeedTree::new(1).stream("ids");
        let mut b = SeedTree::new(1).stream("ids");
        let g = guid(&mut a);
        assert!(is_guid(&g), "{g}");
        assert_eq!(&g[14..15], "4");
        assert_eq!(g, guid(&mut b));
        assert_ne!(guid(&mut a), g);
    }

    #[test]
    fn key_version_shape() {
        let mut rng = SeedTree::new(1).stream("kv");
        let v = key_version(&mut rng);
        assert!(is_key_version(&v), "{v}");
        assert!(!is_key_version("ABCDEF0123456789ABCDEF0123456789"));
        assert!(!is_key_version("abc"));
        assert!(!is_guid("not-a-guid"));
    }
}
