//! The error model: one type that every service's handlers return, mapped to `tonic::Status` in
//! one place, with `google.rpc.BadRequest` field violations and `PreconditionFailure` details.

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `domain` of every `google.rpc.ErrorInfo` Caseway sends.
pub const ERROR_DOMAIN: &str = "caseway.io";
/// `ErrorInfo.reason` of a call the access table refuses for the caller's roles.
pub const ROLE_NOT_PERMITTED: &str = "ROLE_NOT_PERMITTED";

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
    /// An etag did not match: the resource changed since the caller read it.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller's roles (or service identity) may not call the method: the access table
    /// said no. Carries `google.rpc.ErrorInfo` with reason `ROLE_NOT_PERMITTED`.
    #[error("{0}")]
    RoleNotPermitted(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A quota or rate limit is spent; carries `google.rpc.RetryInfo` with `retry_after`.
    #[error("{description}")]
    ResourceExhausted {
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

    pub fn precondition(
        rule: &'static str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Error::FailedPrecondition {
            rule,
            subject: subject.into(),
            description: description.into(),
        }
    }

    /// RESOURCE_EXHAUSTED: a limit is spent; the caller may retry after `retry_after`.
    pub fn exhausted(description: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Error::ResourceExhausted {
            description: description.into(),
            retry_after,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Error::Internal(error.into())
    }

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition { .. } => Code::FailedPrecondition,
            Error::Aborted(_) => Code::Aborted,
            Error::PermissionDenied(_) | Error::RoleNotPermitted(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable("database unavailable".into()),
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                // A unique index caught a race the domain's own check could not.
                Error::AlreadyExists("a resource with the same unique key exists".into())
            }
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40001" | "40P01")) =>
            {
                Error::Aborted("concurrent update, retry".into())
            }
            _ => Error::Internal(error.into()),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        match error {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                tonic::Status::with_error_details(
                    code,
                    format!("invalid argument: {}", describe(&violations)),
                    details,
                )
            }
            Error::FailedPrecondition {
                rule,
                subject,
                description,
            } => {
                let mut details = ErrorDetails::new();
                details.add_precondition_failure_violation(rule, subject, description.clone());
                tonic::Status::with_error_details(code, description, details)
            }
            Error::ResourceExhausted {
                description,
                retry_after,
            } => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(retry_after));
                tonic::Status::with_error_details(code, description, details)
            }
            Error::RoleNotPermitted(description) => {
                let mut details = ErrorDetails::new();
                details.set_error_info(
                    ROLE_NOT_PERMITTED,
                    ERROR_DOMAIN,
                    std::collections::HashMap::new(),
                );
                tonic::Status::with_error_details(code, description, details)
            }
            Error::Internal(source) => {
                // Logged here, where it is handled; the caller learns nothing of the cause.
                tracing::error!(error = ?source, "internal error");
                tonic::Status::internal("internal error")
            }
            other => tonic::Status::new(code, other.to_string()),
        }
    }
}
