//! Azure Monitor at the door: data collection rules ([`dcr`], kept by the door and served over
//! ARM by `crate::arm`), the Logs Ingestion API ([`ingestion`]) and the Logs Query API.

pub mod dcr;
pub mod ingestion;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::AppState;

/// The Azure Monitor data-plane routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/dataCollectionRules/{immutable_id}/streams/{stream}",
        post(ingestion::upload),
    )
}
