//! OpenAI-shaped answers: the error body every refusal uses, and the model list.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// `{"error": {"message", "type", "param", "code"}}`, as OpenAI's API answers errors.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: &'a str,
}

/// Why the gateway refuses or fails a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    BadJson(String),
    MissingModel,
    UnknownModel(String),
    NoHealthyReplica(String),
    UpstreamFailed(String),
    UpstreamTimeout(String),
    NotFound(String),
    TooLarge(usize),
    BadKey(String),
    QuotaExhausted(String),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadJson(_) | Refusal::MissingModel => StatusCode::BAD_REQUEST,
            Refusal::UnknownModel(_) | Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BadKey(_) => StatusCode::UNAUTHORIZED,
            Refusal::QuotaExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::NoHealthyReplica(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable `code` of the error body (also the metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadJson(_) => "invalid_json",
            Refusal::MissingModel => "missing_model",
            Refusal::UnknownModel(_) => "model_not_found",
            Refusal::NoHealthyReplica(_) => "no_healthy_replica",
            Refusal::UpstreamFailed(_) => "upstream_failed",
            Refusal::UpstreamTimeout(_) => "upstream_timeout",
            Refusal::NotFound(_) => "not_found",
            Refusal::TooLarge(_) => "request_too_large",
            Refusal::BadKey(_) => "invalid_api_key",
            Refusal::QuotaExhausted(_) => "insufficient_quota",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::BadJson(e) => format!("the request body is not valid JSON: {e}"),
            Refusal::MissingModel => "the request names no `model`".into(),
            Refusal::UnknownModel(m) => {
                format!("the model `{m}` does not exist here; GET /v1/models lists the models")
            }
            Refusal::NoHealthyReplica(m) => {
                format!("no replica of `{m}` can take the request now; retry shortly")
            }
            Refusal::UpstreamFailed(e) => format!("every replica tried failed: {e}"),
            Refusal::UpstreamTimeout(e) => format!("the replicas did not answer in time: {e}"),
            Refusal::NotFound(p) => format!("no route {p}"),
            Refusal::TooLarge(max) => format!("the request body is larger than {max} bytes"),
            Refusal::BadKey(why) => why.clone(),
            Refusal::QuotaExhausted(why) => why.clone(),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        let kind = match self.status().as_u16() {
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message(),
                kind,
                param: matches!(self, Refusal::MissingModel | Refusal::UnknownModel(_))
                    .then_some("model"),
                code: self.code(),
            },
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The same error as one SSE event, for a stream that broke after it started.
    pub fn sse_event(&self) -> Bytes {
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&self.body());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

#[derive(Debug, Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Debug, Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

/// The body of `GET /v1/models`.
pub fn model_list<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let data =
        names.map(|id| Model { id, object: "model", created: 0, owned_by: "gridlease" }).collect();
    serde_json::to_vec(&ModelList { object: "list", data }).unwrap_or_default()
}
