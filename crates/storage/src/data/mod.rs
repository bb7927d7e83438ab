//! The encrypted data plane (being written).
