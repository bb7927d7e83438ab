//! Asynchronous operations (seeds 000 and 001, "Asynchronous operations and status check"):
//! the headers of an accepted long operation, and the status resource
//! `/subscriptions/{s}/providers/Microsoft.OperationalInsights/locations/{region}/
//! operationStatuses/{id}`, read from storage's `GetOperationStatus`.
//!
//! The status code of an accepted operation is where the seeds disagree: seed 000 (2020) says
//! "the response initially returns an HTTP status code 200 (OK) and header with
//! *Azure-AsyncOperation*", seed 001 (2021) "202 (Accepted) and header". Which one the door
//! sends follows the storage's behaviour profile ([`accept_status`]): the door asks storage which
//! profile it runs (`events.v1.Events/GetClock`, field `profile`) at each accepted operation, so
//! that a storage restarted under another profile, or a second storage in the same process (the
//! tests), is answered right; the profile's decision itself is computed once per built-in profile.
//!
//! Both codes carry `Azure-AsyncOperation` and `Location` (the status URL, absolute, on the host
//! the client used) and `Retry-After`: the Python SDK's poller waits its default 30 s when
//! `Retry-After` is missing or 0, so every accepted answer and every status answer says
//! [`RETRY_AFTER_SECONDS`].

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use cmksim_proto::events::v1 as evp;
use cmksim_proto::storage::v1 as stp;
use cmksim_sim::profile::{ErrorWording, BUILTIN_PROFILES};
use cmksim_sim::{Profile, SimTime};
use serde_json::{json, Value};

use super::{answer, Arm, INSIGHTS_PROVIDER};
use crate::error::RestResult;

/// `Retry-After` of accepted operations and running status resources, in seconds. At least 1:
/// the SDK treats 0 as "no advice" and waits 30 s.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The status code of an accepted long operation under `profile`: 200 for the profiles that
/// follow seed 000 (2020), 202 for those that follow seed 001 (2021).
///
/// The profile has no field of its own for this; the seed it follows is what `error_wording`
/// names (`seed-000` / `seed-001`), and the status code is the same seeds' difference.
pub fn accept_status(profile: &Profile) -> StatusCode {
    match profile.error_wording {
        ErrorWording::Seed000 => StatusCode::OK,
        ErrorWording::Seed001 => StatusCode::ACCEPTED,
    }
}

/// [`accept_status`] of each built-in profile, computed once (the profiles are compiled in).
fn builtin_accept_statuses() -> &'static [(&'static str, StatusCode)] {
    static STATUSES: OnceLock<Vec<(&'static str, StatusCode)>> = OnceLock::new();
    STATUSES.get_or_init(|| {
        BUILTIN_PROFILES
            .iter()
            .filter_map(|name| {
                Profile::builtin(name)
                    .ok()
                    .map(|profile| (*name, accept_status(&profile)))
            })
            .collect()
    })
}

/// The accept status of the profile named `name`; the default profile's (200) when the name is
/// not a built-in one.
pub fn accept_status_of(name: &str) -> StatusCode {
    builtin_accept_statuses()
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, status)| *status)
        .unwrap_or(StatusCode::OK)
}

/// The accept status of the storage the door talks to. If storage cannot say (it went away
/// after accepting), 200: both codes are valid for every SDK, and the operation was accepted.
async fn storage_accept_status(arm: &Arm) -> StatusCode {
    let mut events = evp::events_client::EventsClient::new(arm.state.upstream.storage.clone());
    match events.get_clock(evp::GetClockRequest {}).await {
        Ok(clock) => accept_status_of(&clock.into_inner().profile),
        Err(e) => {
            tracing::warn!(error = %e.message(), "rest: storage did not name its profile; answering 200");
            StatusCode::OK
        }
    }
}

/// A region as ARM spells it in paths (`West Europe` → `westeurope`).
pub fn region_segment(location: &str) -> String {
    location
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The absolute status URL of operation `operation_id`.
pub fn status_url(
    base_url: &str,
    subscription: &str,
    location: &str,
    operation_id: &str,
    api_version: &str,
) -> String {
    format!(
        "{base_url}/subscriptions/{subscription}/providers/{INSIGHTS_PROVIDER}/locations/{}/\
         operationStatuses/{operation_id}?api-version={api_version}",
        region_segment(location)
    )
}

fn insert_header(response: &mut Response, name: &'static str, value: &str) {
    // Every value here is built from ids the services chose, the client's Host header and a
    // checked api-version; one that is no valid header value is left out rather than sent broken.
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The answer to a call that may have started a long operation: 200 with `body` when it
/// completed at once (`operation_id` empty), else the profile's status with the headers.
pub async fn accepted(
    arm: &Arm,
    subscription: &str,
    location: &str,
    operation_id: &str,
    body: Option<Value>,
) -> RestResult<Response> {
    let with_body = |status: StatusCode| match &body {
        Some(value) => answer(status, value.clone()),
        None => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = status;
            response
        }
    };
    if operation_id.is_empty() {
        return Ok(with_body(StatusCode::OK));
    }
    let url = status_url(
        &arm.base_url(),
        subscription,
        location,
        operation_id,
        &arm.api_version,
    );
    let mut response = with_body(storage_accept_status(arm).await);
    insert_header(&mut response, "azure-asyncoperation", &url);
    insert_header(&mut response, "location", &url);
    insert_header(
        &mut response,
        "retry-after",
        &RETRY_AFTER_SECONDS.to_string(),
    );
    Ok(response)
}

/// The status resource as seed 000 shows it: `id`, `name`, `status`, `startTime`, `endTime`
/// once ended, `error` {code, message} when failed.
pub fn status_json(status: &stp::OperationStatus) -> Value {
    let mut out = json!({
        "id": status.id,
        "name": status.name,
        "status": status.status,
        "startTime": SimTime(status.start_unix_ms).to_rfc3339(),
    });
    if let Some(end) = status.end_unix_ms {
        out["endTime"] = json!(SimTime(end).to_rfc3339());
    }
    if !status.error_code.is_empty() || !status.error_message.is_empty() {
        out["error"] = json!({"code": status.error_code, "message": status.error_message});
    }
    out
}

/// `GET .../operationStatuses/{id}`.
pub async fn status(arm: &Arm, subscription: &str, operation_id: &str) -> RestResult<Response> {
    arm.caller()?;
    let mut clusters = stp::clusters_client::ClustersClient::new(arm.storage());
    let status = clusters
        .get_operation_status(stp::OperationRef {
            subscription_id: subscription.to_string(),
            operation_id: operation_id.to_string(),
        })
        .await?
        .into_inner();
    let mut response = answer(StatusCode::OK, status_json(&status));
    insert_header(
        &mut response,
        "retry-after",
        &RETRY_AFTER_SECONDS.to_string(),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2020_profile_answers_200_and_the_current_one_202() {
        assert_eq!(accept_status(&Profile::azure_2020()), StatusCode::OK);
        assert_eq!(
            accept_status(&Profile::builtin("azure-current").unwrap()),
            StatusCode::ACCEPTED
        );
        assert_eq!(accept_status_of("azure-2020"), StatusCode::OK);
        assert_eq!(accept_status_of("azure-current"), StatusCode::ACCEPTED);
        assert_eq!(accept_status_of("no-such-profile"), StatusCode::OK);
    }

    #[test]
    fn the_status_url_is_absolute_and_names_the_region_as_arm_does() {
        assert_eq!(
            status_url(
                "https://127.0.0.1:8443",
                "s1",
                "West Europe",
                "op-1",
                "2025-07-01"
            ),
            "https://127.0.0.1:8443/subscriptions/s1/providers/Microsoft.OperationalInsights/\
             locations/westeurope/operationStatuses/op-1?api-version=2025-07-01"
        );
        let parsed = super::super::ArmPath::parse(
            "/subscriptions/s1/providers/Microsoft.OperationalInsights/locations/westeurope/operationStatuses/op-1",
        );
        assert!(matches!(
            parsed,
            Some(super::super::ArmPath::OperationStatus { .. })
        ));
    }

    #[test]
    fn status_json_has_end_time_and_error_only_when_there_are_some() {
        let running = stp::OperationStatus {
            id: "/subscriptions/s/providers/Microsoft.OperationalInsights/locations/eastus/operationStatuses/o".into(),
            name: "o".into(),
            status: "InProgress".into(),
            start_unix_ms: 0,
            end_unix_ms: None,
            error_code: String::new(),
            error_message: String::new(),
        };
        let json = status_json(&running);
        assert_eq!(json["status"], "InProgress");
        assert_eq!(json["startTime"], "1970-01-01T00:00:00.000Z");
        assert!(json.get("endTime").is_none() && json.get("error").is_none());
        let failed = stp::OperationStatus {
            status: "Failed".into(),
            end_unix_ms: Some(1000),
            error_code: "KeyVaultError".into(),
            error_message: "denied".into(),
            ..running
        };
        let json = status_json(&failed);
        assert_eq!(json["endTime"], "1970-01-01T00:00:01.000Z");
        assert_eq!(
            json["error"],
            json!({"code": "KeyVaultError", "message": "denied"})
        );
    }
}
