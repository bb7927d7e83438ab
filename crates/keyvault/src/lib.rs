//! cmksim-keyvault (being written).
