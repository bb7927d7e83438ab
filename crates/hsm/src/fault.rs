//! Injected device faults, for chaos drills.
//!
//! A fault is a plain value held by the module and checked at the top of every `c_*` call. The
//! latency fault does not sleep: domain logic must never wait on the real clock (the simulator
//! runs days in seconds), so the module only *reports* the added latency through
//! [`crate::Module::added_latency`] and the async caller sleeps on the simulation clock.
//!
//! Tamper is not a fault you can clear, so it is a method of its own ([`crate::Module::tamper`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fault injected with [`crate::Module::set_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Fault {
    /// The device behaves normally.
    #[default]
    None,
    /// Every call answers `CKR_DEVICE_ERROR` until the fault is cleared.
    DeviceError,
    /// Calls work but the caller should add this much latency (see
    /// [`crate::Module::added_latency`]).
    Latency(Duration),
}
