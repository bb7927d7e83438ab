//! Azure Monitor at the door: data collection rules ([`dcr`], kept by the door and served over
//! ARM by `crate::arm`), the Logs Ingestion API ([`ingestion`]) and the Logs Query API
//! ([`query`]).

pub mod dcr;
pub mod ingestion;
pub mod query;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::AppState;

/// The Azure Monitor data-plane routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/dataCollectionRules/{immutable_id}/streams/{stream}",
            post(ingestion::upload),
        )
        .route(
            "/v1/workspaces/{workspace}/query",
            post(query::post_query).get(query::get_query),
        )
        .route("/v1/$batch", post(query::batch))
}
