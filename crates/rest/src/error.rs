//! [`RestError`]: every failure of the door as the HTTP answer Azure would give,
//! `{"error":{"code","message","innererror":{"code"}}}` with its status.
//!
//! Most errors are the services' own: a gRPC status carries a `common.v1.AzureError` (code,
//! exact message, HTTP status, inner code) and the door returns it unchanged, so a REST client
//! reads the same text a gRPC client does. The door's own errors (a malformed body, an unknown
//! route, a service that cannot be reached) use the same shape. User input echoed into a
//! message is cut by [`echo`] (`cmksim_sim::text::echo`, the project's one rule for it).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cmksim_proto::common::v1::AzureError;
use serde_json::json;

pub use cmksim_sim::text::echo;

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct RestError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `innererror.code`, when there is one.
    pub inner_code: Option<String>,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl RestError {
    /// An error with a status, code and message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> RestError {
        RestError {
            status,
            code: code.to_string(),
            message: message.into(),
            inner_code: None,
            headers: Vec::new(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> RestError {
        RestError::new(400, code, message)
    }

    /// A failure before serving (a service unreachable at start, unwritable credentials).
    pub fn startup(message: impl Into<String>) -> RestError {
        RestError::new(503, "ServiceUnavailable", message)
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: &'static str, value: String) -> RestError {
        self.headers.push((name, value));
        self
    }

    /// The Azure error a service answered.
    pub fn from_azure(azure: AzureError) -> RestError {
        let status = match u16::try_from(azure.http_status) {
            Ok(s) if (400..600).contains(&s) => s,
            _ => 500,
        };
        RestError {
            status,
            code: azure.code,
            message: azure.message,
            inner_code: (!azure.inner_code.is_empty()).then_some(azure.inner_code),
            headers: Vec::new(),
        }
    }
}

impl From<tonic::Status> for RestError {
    /// The Azure error in the status details when the service sent one; otherwise the service
    /// could not answer (unreachable, timed out), which Azure reports as 503 (or 504).
    fn from(status: tonic::Status) -> RestError {
        if let Some(azure) = cmksim_keyvault::azure_error(&status) {
            let retry_after = status
                .metadata()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut error = RestError::from_azure(azure);
            if let Some(seconds) = retry_after {
                error = error.with_header("retry-after", seconds);
            }
            return error;
        }
        match status.code() {
            tonic::Code::DeadlineExceeded => {
                RestError::new(504, "GatewayTimeout", "The service did not answer in time.")
            }
            tonic::Code::InvalidArgument => {
                RestError::bad_request("BadRequest", echo(status.message()))
            }
            tonic::Code::NotFound => RestError::new(404, "NotFound", echo(status.message())),
            tonic::Code::AlreadyExists => RestError::new(409, "Conflict", echo(status.message())),
            tonic::Code::PermissionDenied => {
                RestError::new(403, "Forbidden", echo(status.message()))
            }
            tonic::Code::Unauthenticated => {
                RestError::new(401, "Unauthorized", echo(status.message()))
            }
            tonic::Code::FailedPrecondition => {
                RestError::new(409, "Conflict", echo(status.message()))
            }
            _ => RestError::new(
                503,
                "ServiceUnavailable",
                format!(
                    "The service could not be reached ({:?}): {}",
                    status.code(),
                    echo(status.message())
                ),
            ),
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(inner) = &self.inner_code {
            error["innererror"] = json!({ "code": inner });
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        if let Ok(code) = HeaderValue::from_str(&self.code) {
            headers.insert("x-ms-error-code", code);
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// The answer for a path no route serves.
pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> RestError {
    RestError::new(
        404,
        "NotFound",
        format!(
            "cmksim serves no {method} {} (see the README's REST section for the routes)",
            echo(uri.path())
        ),
    )
}

/// A JSON body that did not parse, as Azure's 400.
pub fn bad_json(rejection: axum::extract::rejection::JsonRejection) -> RestError {
    RestError::bad_request("BadParameter", echo(&rejection.body_text()))
}

/// Result of a handler.
pub type RestResult<T> = Result<T, RestError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_long_input_and_says_how_long_it_was() {
        assert_eq!(echo("short"), "short");
        let long = "x".repeat(10_000);
        let cut = echo(&long);
        assert!(
            cut.chars().count() < cmksim_sim::text::ECHO_CHARS_MAX + 30,
            "{cut}"
        );
        assert!(cut.ends_with("(10000 characters)"));
    }

    #[test]
    fn an_azure_error_keeps_status_code_message_and_inner_code() {
        let e = RestError::from_azure(AzureError {
            code: "Forbidden".into(),
            message: "Operation unwrapKey is not allowed on a disabled key.".into(),
            http_status: 403,
            inner_code: "KeyDisabled".into(),
        });
        assert_eq!(e.status, 403);
        assert_eq!(e.inner_code.as_deref(), Some("KeyDisabled"));
        let odd = RestError::from_azure(AzureError {
            http_status: 0,
            ..Default::default()
        });
        assert_eq!(
            odd.status, 500,
            "a status that is no HTTP error never reaches a client"
        );
    }
}
