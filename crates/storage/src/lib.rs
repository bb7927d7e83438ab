//! cmksim-storage (being written).
