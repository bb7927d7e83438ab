//! cmksim-hsm (being written).
