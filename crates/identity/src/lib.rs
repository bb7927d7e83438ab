//! cmksim-identity (being written).
