//! How a peer is called: a deadline on every call (never past the deadline of the caller it
//! is made for), retries only for idempotent calls whose peer could not be reached, and one
//! reading of the peer's answer.

use std::future::Future;
use std::time::Duration;

use caseway_platform::error::{Error, Result};

/// How long a peer has to answer one attempt. Calls between services are lookups and holds
/// that take milliseconds; a peer that takes longer is treated as unreachable.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Waits before the retries of an idempotent call.
const BACKOFF: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// Whether a call may be repeated: reads, and changes keyed so that a repeat has no further
/// effect. Others are tried once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    Idempotent,
    Once,
}

/// What a peer answered, for the typed clients to read.
#[derive(Debug)]
pub enum Failure {
    /// NOT_FOUND: the thing does not exist for this caller.
    NotFound,
    /// INVALID_ARGUMENT, with the peer's message.
    Invalid(String),
    /// FAILED_PRECONDITION, with the rule the peer named (the PreconditionFailure's type).
    Rule { rule: String, message: String },
    /// Anything else, already this service's error (unreachable, refused, stale).
    Other(Error),
}

impl Failure {
    fn of(peer: &str, status: &tonic::Status) -> Failure {
        use tonic_types::StatusExt;
        match status.code() {
            tonic::Code::NotFound => Failure::NotFound,
            tonic::Code::InvalidArgument => Failure::Invalid(status.message().to_string()),
            tonic::Code::FailedPrecondition => Failure::Rule {
                rule: status
                    .get_details_precondition_failure()
                    .and_then(|p| p.violations.into_iter().next())
                    .map(|v| v.r#type)
                    .unwrap_or_default(),
                message: status.message().to_string(),
            },
            _ => Failure::Other(Error::from_peer(peer, status)),
        }
    }

    /// The failure as an error of this service when the caller has no better reading: a peer
    /// that refuses what this service asked on its own is this service's dependency failing.
    pub fn into_error(self, peer: &str) -> Error {
        match self {
            Failure::Other(error) => error,
            Failure::NotFound => Error::Unavailable(format!("{peer} service: not found")),
            Failure::Invalid(message) | Failure::Rule { message, .. } => {
                Error::Unavailable(format!("{peer} service: {message}"))
            }
        }
    }
}

/// An idempotent lookup of `peer`, asked for a fresh read: the reply, or `None` when the peer
/// has no such thing for this caller (NOT_FOUND); any other failure is this service's
/// dependency failing.
pub async fn get<Req, Resp, Fut>(
    peer: &'static str,
    mut request: impl FnMut() -> Result<tonic::Request<Req>>,
    send: impl FnMut(tonic::Request<Req>) -> Fut,
) -> Result<Option<Resp>>
where
    Req: caseway_api::Rpc,
    Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
{
    // What a lookup finds is cached here, dropped by the owner's events: it must be what is
    // stored, not what the owner's own cache (which hears those events apart) still holds.
    let fresh = || request().map(caseway_platform::caller::ask_fresh);
    match call(peer, Retry::Idempotent, fresh, send).await {
        Ok(reply) => Ok(Some(reply)),
        Err(Failure::NotFound) => Ok(None),
        Err(failure) => Err(failure.into_error(peer)),
    }
}

/// Calls `peer` with requests built by `request` (one per attempt), each attempt under
/// [`DEADLINE`] or what remains of the served call's caller's deadline, whichever is
/// shorter. An idempotent call is tried again when the peer could not be reached.
pub async fn call<Req, Resp, Fut>(
    peer: &'static str,
    retry: Retry,
    mut request: impl FnMut() -> Result<tonic::Request<Req>>,
    mut send: impl FnMut(tonic::Request<Req>) -> Fut,
) -> std::result::Result<Resp, Failure>
where
    Req: caseway_api::Rpc,
    Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
{
    use tracing::Instrument;
    let mut attempt = 0;
    loop {
        // No longer than the caller of the call being served still waits: past its deadline
        // no one wants the answer, and a slow peer must not hold this service's work longer.
        let deadline = match caseway_platform::layer::remaining() {
            Some(left) if left.is_zero() => {
                return Err(Failure::of(
                    peer,
                    &tonic::Status::deadline_exceeded("the caller's deadline passed"),
                ));
            }
            Some(left) => left.min(DEADLINE),
            None => DEADLINE,
        };
        let mut message = request().map_err(Failure::Other)?;
        // The deadline travels as `grpc-timeout`, so the peer stops working on an answer no
        // one waits for; the client's own timer bounds the wait when the peer never answers.
        message.set_timeout(deadline);
        // A client span per attempt, its context sent along so the peer's span is its child.
        let span = tracing::info_span!(
            "grpc client",
            otel.name = format_args!("{}/{}", Req::SERVICE, Req::METHOD),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = Req::SERVICE,
            rpc.method = Req::METHOD,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            peer.service = peer,
            attempt,
        );
        let started = std::time::Instant::now();
        let sent = {
            let _entered = span.enter();
            caseway_platform::telemetry::inject_traceparent(&mut message);
            send(message)
        };
        let answer = tokio::time::timeout(deadline, sent.instrument(span.clone())).await;
        let code = match &answer {
            Ok(Ok(_)) => tonic::Code::Ok,
            Ok(Err(status)) => status.code(),
            Err(_) => tonic::Code::DeadlineExceeded,
        };
        span.record("rpc.grpc.status_code", code as i32);
        if caseway_platform::layer::server_fault(code) {
            span.record("otel.status_code", "ERROR");
        }
        caseway_platform::metrics::observe_client(
            Req::SERVICE,
            Req::METHOD,
            code,
            started.elapsed(),
        );
        let status = match answer {
            Ok(Ok(reply)) => return Ok(reply.into_inner()),
            Ok(Err(status)) => status,
            Err(_) => tonic::Status::deadline_exceeded(format!(
                "no answer within {:.3} s",
                deadline.as_secs_f64()
            )),
        };
        // Tried again only when the peer could not be reached; a peer that did not answer in
        // time is slow, and asking again would pile more work on it and make the caller wait
        // for nothing.
        let unreachable = status.code() == tonic::Code::Unavailable;
        match BACKOFF.get(attempt) {
            Some(wait) if retry == Retry::Idempotent && unreachable => {
                tracing::debug!(peer, attempt, error = %status.message(), "retrying a peer");
                tokio::time::sleep(*wait).await;
                attempt += 1;
            }
            _ => return Err(Failure::of(peer, &status)),
        }
    }
}

/// A peer's id that does not parse: the peer's fault, reported as it being unusable rather
/// than guessed around.
pub fn id<T: From<uuid::Uuid>>(peer: &str, what: &str, text: &str) -> Result<T> {
    uuid::Uuid::parse_str(text)
        .map(T::from)
        .map_err(|_| Error::Unavailable(format!("{peer} service: unreadable {what} {text:?}")))
}

/// A peer's optional id: empty is none.
pub fn optional_id<T: From<uuid::Uuid>>(peer: &str, what: &str, text: &str) -> Result<Option<T>> {
    if text.is_empty() {
        Ok(None)
    } else {
        id(peer, what, text).map(Some)
    }
}

/// A peer's date, which must be a real one.
pub fn date(
    peer: &str,
    what: &str,
    date: Option<&caseway_api::google::r#type::Date>,
) -> Result<Option<chrono::NaiveDate>> {
    let Some(d) = date else {
        return Ok(None);
    };
    let parsed = u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .and_then(|(month, day)| chrono::NaiveDate::from_ymd_opt(d.year, month, day));
    parsed
        .map(Some)
        .ok_or_else(|| Error::Unavailable(format!("{peer} service: unreadable {what} {d:?}")))
}
