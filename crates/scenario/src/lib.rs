//! cmksim-scenario (being written).
