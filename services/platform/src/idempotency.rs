//! Idempotent creates by `request_id`: the same request twice returns the first result; a
//! different request under the same id is refused. The key is claimed inside the caller's
//! transaction, so a concurrent duplicate waits for the first to commit, then reads its result.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::db::Scoped;
use crate::error::{Error, Reason, Result};

/// What a claim found.
pub enum Claim<R> {
    /// The key is new: do the work, then [`complete`] in the same transaction.
    New,
    /// The same request was done before: return this.
    Replay(R),
}

/// Claims `request_id` for `method` and this request. An empty request id claims nothing.
pub async fn claim<Req: Message, Resp: Message + Default>(
    tx: &mut impl Scoped,
    method: &str,
    request_id: &str,
    request: &Req,
) -> Result<Claim<Resp>> {
    if request_id.is_empty() {
        return Ok(Claim::New);
    }
    let fingerprint = fingerprint(request);
    let tenant = tx.tenant_id().as_uuid();
    let inserted = sqlx::query(
        "INSERT INTO platform.idempotency_keys (tenant_id, method, request_id, request_hash) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(method)
    .bind(request_id)
    .bind(&fingerprint[..])
    .execute(tx.conn())
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let (stored_hash, response): (Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, response FROM platform.idempotency_keys \
         WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(tenant)
    .bind(method)
    .bind(request_id)
    .fetch_one(tx.conn())
    .await?;
    if stored_hash != fingerprint {
        return Err(Error::RequestIdReused);
    }
    let response = response.ok_or_else(|| {
        Error::aborted(
            Reason::RequestInProgress,
            "a request with this request_id is still in progress",
        )
    })?;
    let decoded = Resp::decode(&response[..]).map_err(Error::internal)?;
    Ok(Claim::Replay(decoded))
}

/// The stored response of this request, if it was done before; claims nothing. For work that
/// must not be repeated before the claim (holding units elsewhere): a request still in
/// progress reads as not done, and its claim later waits for it.
pub async fn previous<Req: Message, Resp: Message + Default>(
    tx: &mut impl Scoped,
    method: &str,
    request_id: &str,
    request: &Req,
) -> Result<Option<Resp>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let tenant = tx.tenant_id().as_uuid();
    let stored: Option<(Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT request_hash, response FROM platform.idempotency_keys \
         WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(tenant)
    .bind(method)
    .bind(request_id)
    .fetch_optional(tx.conn())
    .await?;
    match stored {
        None | Some((_, None)) => Ok(None),
        Some((hash, _)) if hash != fingerprint(request) => Err(Error::RequestIdReused),
        Some((_, Some(response))) => {
            Ok(Some(Resp::decode(&response[..]).map_err(Error::internal)?))
        }
    }
}

/// Stores the response of a claimed request, in the transaction that did the work.
pub async fn complete<Resp: Message>(
    tx: &mut impl Scoped,
    method: &str,
    request_id: &str,
    response: &Resp,
) -> Result<()> {
    if request_id.is_empty() {
        return Ok(());
    }
    let tenant = tx.tenant_id().as_uuid();
    sqlx::query(
        "UPDATE platform.idempotency_keys SET response = $4 \
         WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(tenant)
    .bind(method)
    .bind(request_id)
    .bind(response.encode_to_vec())
    .execute(tx.conn())
    .await?;
    Ok(())
}

fn fingerprint<Req: Message>(request: &Req) -> [u8; 32] {
    Sha256::digest(request.encode_to_vec()).into()
}
