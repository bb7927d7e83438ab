//! cmksim-ingest (being written).
