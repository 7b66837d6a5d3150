//! The error model: one type that every service's handlers return, mapped to `tonic::Status` in
//! one place, with `google.rpc.BadRequest` field violations and `PreconditionFailure` details.

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use caseway_api::{ERROR_DOMAIN, reason_text};

/// The `reason` of the `google.rpc.ErrorInfo` every failed call carries, listed (and
/// documented) once, in `proto/caseway/common/v1/errors.proto`.
pub use caseway_api::caseway::common::v1::ErrorReason as Reason;

/// The reason of a status, when it carries Caseway's `ErrorInfo`.
pub fn reason_of(status: &tonic::Status) -> Option<Reason> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    Reason::from_str_name(&format!("ERROR_REASON_{}", info.reason))
}

/// One invalid field of a request, named by its path (`service.code`, `lines[3].units`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The request_id was used before for a different request.
    #[error("request_id: was used for a different request")]
    RequestIdReused,
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    /// A domain rule said no; `rule` is a stable machine-readable name.
    #[error("{description}")]
    FailedPrecondition {
        rule: &'static str,
        subject: String,
        description: String,
    },
    /// The call lost to another change: a stale etag, a request still in progress, a
    /// concurrent update.
    #[error("{description}")]
    Aborted { reason: Reason, description: String },
    /// The caller may not do this: its roles, a permission it lacks, its tenant's status.
    #[error("{description}")]
    PermissionDenied { reason: Reason, description: String },
    #[error("{description}")]
    Unauthenticated { reason: Reason, description: String },
    /// A quota or rate limit is spent; carries `google.rpc.RetryInfo` with `retry_after`.
    #[error("{description}")]
    ResourceExhausted {
        reason: Reason,
        description: String,
        retry_after: std::time::Duration,
    },
    /// A dependency (database, broker, another service) is down.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A rule of a service's domain that a change can break, named on the wire as the
/// PreconditionFailure violation's `type` and the ErrorInfo's `rule` metadata. Each service's
/// `domain.rs` lists its rules as one enum.
pub trait Rule: Copy {
    /// The rule's stable snake_case name.
    fn name(self) -> &'static str;
}

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    /// FAILED_PRECONDITION: `rule` of the domain does not hold for `subject`.
    pub fn precondition(
        rule: impl Rule,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Error::FailedPrecondition {
            rule: rule.name(),
            subject: subject.into(),
            description: description.into(),
        }
    }

    /// RESOURCE_EXHAUSTED: a limit is spent; the caller may retry after `retry_after`.
    pub fn exhausted(
        reason: Reason,
        description: impl Into<String>,
        retry_after: std::time::Duration,
    ) -> Self {
        Error::ResourceExhausted {
            reason,
            description: description.into(),
            retry_after,
        }
    }

    /// ABORTED: the etag named is not the resource's.
    pub fn stale(description: impl Into<String>) -> Self {
        Error::aborted(Reason::EtagMismatch, description)
    }

    /// ABORTED for `reason`.
    pub fn aborted(reason: Reason, description: impl Into<String>) -> Self {
        Error::Aborted {
            reason,
            description: description.into(),
        }
    }

    /// PERMISSION_DENIED for `reason`.
    pub fn denied(reason: Reason, description: impl Into<String>) -> Self {
        Error::PermissionDenied {
            reason,
            description: description.into(),
        }
    }

    /// UNAUTHENTICATED for `reason`.
    pub fn unauthenticated(reason: Reason, description: impl Into<String>) -> Self {
        Error::Unauthenticated {
            reason,
            description: description.into(),
        }
    }

    /// What another Caseway service's failure means for this call: a lost race or a refusal
    /// keeps its code and reason; anything else means the peer cannot answer (a fault of the
    /// peer, or of how this service calls it, is never the caller's).
    pub fn from_peer(peer: &str, status: &tonic::Status) -> Self {
        let reason = reason_of(status);
        let description = format!("{peer} service: {}", status.message());
        match (status.code(), reason) {
            (Code::Aborted, reason) => {
                Error::aborted(reason.unwrap_or(Reason::ConcurrentUpdate), description)
            }
            (Code::PermissionDenied, Some(reason)) => Error::denied(reason, description),
            _ => Error::Unavailable(description),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Error::Internal(error.into())
    }

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) | Error::RequestIdReused => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition { .. } => Code::FailedPrecondition,
            Error::Aborted { .. } => Code::Aborted,
            Error::PermissionDenied { .. } => Code::PermissionDenied,
            Error::Unauthenticated { .. } => Code::Unauthenticated,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// The `ErrorInfo` reason the caller receives.
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidArgument(_) => Reason::FieldInvalid,
            Error::RequestIdReused => Reason::RequestIdReused,
            Error::NotFound { .. } => Reason::ResourceNotFound,
            Error::AlreadyExists(_) => Reason::AlreadyExists,
            Error::FailedPrecondition { .. } => Reason::RuleViolated,
            Error::Aborted { reason, .. }
            | Error::PermissionDenied { reason, .. }
            | Error::Unauthenticated { reason, .. }
            | Error::ResourceExhausted { reason, .. } => *reason,
            Error::Unavailable(_) => Reason::DependencyUnavailable,
            Error::Internal(_) => Reason::Internal,
        }
    }
}

/// Whether PostgreSQL's SQLSTATE `code` says the database cannot serve now but may soon:
/// a connection exception (class 08), the server shutting down or starting up (57P01,
/// 57P02, 57P03, as a restart answers the connections it ends), or too many connections.
pub fn database_unavailable(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable("database unavailable".into()),
            sqlx::Error::Database(db) if db.code().is_some_and(|c| database_unavailable(&c)) => {
                Error::Unavailable("database unavailable".into())
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                // A unique index caught a race the domain's own check could not.
                Error::AlreadyExists("a resource with the same unique key exists".into())
            }
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40001" | "40P01")) =>
            {
                Error::aborted(Reason::ConcurrentUpdate, "concurrent update, retry")
            }
            _ => Error::Internal(error.into()),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        let mut details = ErrorDetails::new();
        let mut metadata = std::collections::HashMap::new();
        let message = match &error {
            Error::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                error.to_string()
            }
            Error::RequestIdReused => {
                details.add_bad_request_violation("request_id", "was used for a different request");
                error.to_string()
            }
            Error::NotFound { resource, .. } => {
                metadata.insert("resource".to_string(), resource.to_string());
                error.to_string()
            }
            Error::FailedPrecondition {
                rule,
                subject,
                description,
            } => {
                details.add_precondition_failure_violation(*rule, subject, description.clone());
                metadata.insert("rule".to_string(), rule.to_string());
                error.to_string()
            }
            Error::ResourceExhausted { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
                error.to_string()
            }
            Error::Internal(source) => {
                // Logged here, where it is handled; the caller learns nothing of the cause.
                tracing::error!(error = ?source, "internal error");
                "internal error".to_string()
            }
            _ => error.to_string(),
        };
        with_error_info(code, error.reason(), metadata, message, details)
    }
}

fn with_error_info(
    code: Code,
    reason: Reason,
    metadata: std::collections::HashMap<String, String>,
    message: String,
    mut details: ErrorDetails,
) -> tonic::Status {
    details.set_error_info(reason_text(reason), ERROR_DOMAIN, metadata);
    tonic::Status::with_error_details(code, message, details)
}

/// A status Caseway makes itself, outside any handler (the gateway layer's deadline, an
/// unknown method), with its `ErrorInfo`.
pub fn status(code: Code, reason: Reason, message: impl Into<String>) -> tonic::Status {
    with_error_info(
        code,
        reason,
        std::collections::HashMap::new(),
        message.into(),
        ErrorDetails::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct TestRule;

    impl Rule for TestRule {
        fn name(self) -> &'static str {
            "rule_x"
        }
    }

    fn info(error: Error) -> (Code, String, tonic::Status) {
        let status = tonic::Status::from(error);
        let info = status
            .get_details_error_info()
            .expect("every error has ErrorInfo");
        assert_eq!(info.domain, ERROR_DOMAIN);
        (status.code(), info.reason, status)
    }

    #[test]
    fn a_database_restarting_or_out_of_reach_is_unavailable_and_nothing_else_is() {
        for code in [
            "57P01", "57P02", "57P03", "53300", "08006", "08001", "08000",
        ] {
            assert!(database_unavailable(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014", "22P02", "XX000"] {
            assert!(!database_unavailable(code), "{code}");
        }
    }

    #[test]
    fn every_error_carries_its_reason_and_the_details_of_its_code() {
        let cases = [
            (
                Error::invalid("service.code", "is required"),
                Code::InvalidArgument,
                "FIELD_INVALID",
            ),
            (
                Error::RequestIdReused,
                Code::InvalidArgument,
                "REQUEST_ID_REUSED",
            ),
            (
                Error::not_found("service", "x"),
                Code::NotFound,
                "RESOURCE_NOT_FOUND",
            ),
            (
                Error::AlreadyExists("code".into()),
                Code::AlreadyExists,
                "ALREADY_EXISTS",
            ),
            (
                Error::precondition(TestRule, "a/1", "no"),
                Code::FailedPrecondition,
                "RULE_VIOLATED",
            ),
            (Error::stale("changed"), Code::Aborted, "ETAG_MISMATCH"),
            (
                Error::aborted(Reason::RequestInProgress, "wait"),
                Code::Aborted,
                "REQUEST_IN_PROGRESS",
            ),
            (
                Error::aborted(Reason::ConcurrentUpdate, "retry"),
                Code::Aborted,
                "CONCURRENT_UPDATE",
            ),
            (
                Error::unauthenticated(Reason::TokenRevoked, "revoked"),
                Code::Unauthenticated,
                "TOKEN_REVOKED",
            ),
            (
                Error::denied(Reason::TenantSuspended, "suspended"),
                Code::PermissionDenied,
                "TENANT_SUSPENDED",
            ),
            (
                Error::exhausted(
                    Reason::RateLimited,
                    "spent",
                    std::time::Duration::from_secs(1),
                ),
                Code::ResourceExhausted,
                "RATE_LIMITED",
            ),
            (
                Error::Unavailable("db".into()),
                Code::Unavailable,
                "DEPENDENCY_UNAVAILABLE",
            ),
            (
                Error::internal(anyhow::anyhow!("cause")),
                Code::Internal,
                "INTERNAL",
            ),
        ];
        for (error, code, reason) in cases {
            let (got_code, got_reason, status) = info(error);
            assert_eq!((got_code, got_reason.as_str()), (code, reason));
            match code {
                Code::InvalidArgument => assert!(status.get_details_bad_request().is_some()),
                Code::FailedPrecondition => {
                    assert!(status.get_details_precondition_failure().is_some());
                    let info = status.get_details_error_info().unwrap();
                    assert_eq!(info.metadata["rule"], "rule_x");
                }
                Code::ResourceExhausted => assert!(status.get_details_retry_info().is_some()),
                Code::Internal => assert_eq!(status.message(), "internal error"),
                _ => {}
            }
        }
    }

    #[test]
    fn every_reason_travels_as_its_name_and_comes_back() {
        for value in 1.. {
            let Ok(reason) = Reason::try_from(value) else {
                break;
            };
            let text = reason_text(reason);
            assert!(!text.starts_with("ERROR_REASON_"));
            assert!(text.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            let status = status(Code::Unknown, reason, "x");
            assert_eq!(reason_of(&status), Some(reason));
        }
    }

    #[test]
    fn a_peer_keeps_its_races_and_refusals_and_nothing_else() {
        let peer = |error: Error| Error::from_peer("peer", &tonic::Status::from(error));
        assert_eq!(peer(Error::stale("x")).reason(), Reason::EtagMismatch);
        assert_eq!(
            peer(Error::denied(Reason::RoleNotPermitted, "x")).reason(),
            Reason::RoleNotPermitted
        );
        assert_eq!(
            peer(Error::invalid("f", "bad")).reason(),
            Reason::DependencyUnavailable
        );
        assert_eq!(
            peer(Error::internal(anyhow::anyhow!("x"))).reason(),
            Reason::DependencyUnavailable
        );
    }
}
