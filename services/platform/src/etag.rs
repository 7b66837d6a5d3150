//! Entity tags for optimistic concurrency: an etag names a row's version.

use crate::error::{Error, Result};

/// The etag of a row at `version`. Opaque to callers; quoted like an HTTP entity tag.
pub fn format(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version an etag names; None when the caller sent no etag (an unconditional change).
/// INVALID_ARGUMENT naming `field` for an etag this server never issued.
pub fn parse(field: &str, etag: &str) -> Result<Option<i64>> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .and_then(|e| e.parse().ok())
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "is not an etag issued by this server"))
}

/// ABORTED when the caller's etag names another version than the stored one.
pub fn check_version(expected: Option<i64>, actual: i64) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Error::stale(
            "the etag does not match: the resource changed since it was read",
        )),
        _ => Ok(()),
    }
}
