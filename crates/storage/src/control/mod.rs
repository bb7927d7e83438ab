//! The dedicated-cluster control plane (being written).
