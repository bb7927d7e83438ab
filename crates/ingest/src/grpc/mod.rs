//! The tonic adapter: protobuf ↔ domain conversions, error → status mapping, and the Ingestion
//! and Query services. No decision is taken here; everything is delegated to [`Frontend`].
//!
//! [`Frontend`]: crate::Frontend

pub mod convert;
pub mod service;
pub mod status;
