//! The Key Vault access loop (being written).
