//! Idempotent state changes by `request_id`: the same request twice returns the first reply; a
//! different request under the same id is refused (`REQUEST_ID_REUSED`). The key is claimed
//! inside the caller's transaction, so a concurrent duplicate waits for the first to commit,
//! then reads its reply. A use case names the request by a [`Fingerprint`] of what it was
//! asked (whatever it chooses to hash), and stores the reply it gave.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::db::Scoped;
use crate::error::{Error, Reason, Result};
use crate::outbox::{self, Event};

/// What a request asked, hashed: two requests under one id are the same when their
/// fingerprints are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a message's encoding (a request as it came, or a part of it).
    pub fn of<M: Message>(message: &M) -> Fingerprint {
        Fingerprint::of_bytes(&message.encode_to_vec())
    }

    pub fn of_bytes(bytes: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(bytes).into())
    }
}

/// One request's claim: the method, the caller's request id and what it asked.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    pub method: &'a str,
    pub request_id: &'a str,
    pub fingerprint: Fingerprint,
}

impl<'a> Key<'a> {
    pub fn new(method: &'a str, request_id: &'a str, fingerprint: Fingerprint) -> Key<'a> {
        Key {
            method,
            request_id,
            fingerprint,
        }
    }

    /// A key over the whole of `request` (the usual case).
    pub fn of<M: Message>(method: &'a str, request_id: &'a str, request: &M) -> Key<'a> {
        Key::new(method, request_id, Fingerprint::of(request))
    }
}

/// What a claim found.
pub enum Claim<R> {
    /// The key is new: do the work, then [`complete`] in the same transaction.
    New,
    /// The same request was done before: return this.
    Replay(R),
}

/// Claims `key`. An empty request id claims nothing.
pub async fn claim<Resp: Message + Default>(
    tx: &mut impl Scoped,
    key: &Key<'_>,
) -> Result<Claim<Resp>> {
    let Key {
        method,
        request_id,
        fingerprint: Fingerprint(fingerprint),
    } = *key;
    if request_id.is_empty() {
        return Ok(Claim::New);
    }
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
    replay(tx, key).await
}

/// What is stored under `key`: the request's fingerprint and its reply (None while the
/// request is in progress).
async fn stored(tx: &mut impl Scoped, key: &Key<'_>) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>> {
    Ok(sqlx::query_as(
        "SELECT request_hash, response FROM platform.idempotency_keys \
         WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(key.method)
    .bind(key.request_id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The first reply under `key`, which another transaction has taken.
async fn replay<Resp: Message + Default>(
    tx: &mut impl Scoped,
    key: &Key<'_>,
) -> Result<Claim<Resp>> {
    let (stored_hash, response) = stored(tx, key).await?.ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "an idempotency key taken by another call is gone"
        ))
    })?;
    if stored_hash != key.fingerprint.0 {
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
pub async fn previous<Resp: Message + Default>(
    tx: &mut impl Scoped,
    key: &Key<'_>,
) -> Result<Option<Resp>> {
    if key.request_id.is_empty() {
        return Ok(None);
    }
    let stored = stored(tx, key).await?;
    match stored {
        None | Some((_, None)) => Ok(None),
        Some((hash, _)) if hash != key.fingerprint.0 => Err(Error::RequestIdReused),
        Some((_, Some(response))) => {
            Ok(Some(Resp::decode(&response[..]).map_err(Error::internal)?))
        }
    }
}

/// Stores the reply to a claimed request, in the transaction that did the work.
pub async fn complete<Resp: Message>(
    tx: &mut impl Scoped,
    key: &Key<'_>,
    response: &Resp,
) -> Result<()> {
    let Key {
        method, request_id, ..
    } = *key;
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

/// The claim of [`settle`]: the key of tenant $1 with its reply, over the parameters named
/// for the method, the request id, the fingerprint and the reply; no row when the key is
/// taken or the request id empty.
macro_rules! claim {
    ($method:literal, $request_id:literal, $hash:literal, $reply:literal) => {
        concat!(
            "INSERT INTO platform.idempotency_keys \
             (tenant_id, method, request_id, request_hash, response) SELECT $1, ",
            $method,
            ", ",
            $request_id,
            ", ",
            $hash,
            ", ",
            $reply,
            " WHERE ",
            $request_id,
            " <> '' ON CONFLICT DO NOTHING RETURNING 1"
        )
    };
}

/// The last write of a use case that does its work first and claims after: stores `reply`
/// under `key` and enqueues `events`, in one statement (one round trip where [`claim`] and
/// [`complete`] with [`outbox::enqueue_all`] take three).
///
/// [`Claim::New`]: the reply and the events are written; commit. [`Claim::Replay`]: the key
/// was already taken (the same request done before, or done concurrently: the statement waits
/// for that transaction and sees its commit), and this is the first reply. The caller then
/// drops its transaction, which rolls back the work done twice. An empty request id claims
/// nothing and answers `New`.
pub async fn settle<Resp: Message + Default, M: Message>(
    tx: &mut impl Scoped,
    key: &Key<'_>,
    reply: &Resp,
    events: &[Event<'_, M>],
) -> Result<Claim<Resp>> {
    let reply = reply.encode_to_vec();
    let claimed: bool = match outbox::Columns::of(tx.tenant_id(), events) {
        // The key with its reply, the events and the relay's notification.
        Some(columns) => {
            // The claim's parameters follow the outbox's.
            macro_rules! with_events {
                ($insert:expr) => {
                    concat!(
                        "WITH claim AS (",
                        claim!("$9", "$10", "$11", "$12"),
                        "), events AS (",
                        $insert,
                        ") SELECT $10 = '' OR EXISTS (SELECT FROM claim), (",
                        outbox::notify!(),
                        ")"
                    )
                };
            }
            let sql = match events.len() {
                1 => with_events!(outbox::insert_one!()),
                _ => with_events!(outbox::insert_many!()),
            };
            let row = columns
                .bind(sqlx::query(sql))
                .bind(key.method)
                .bind(key.request_id)
                .bind(&key.fingerprint.0[..])
                .bind(reply)
                .fetch_one(tx.conn())
                .await?;
            sqlx::Row::try_get(&row, 0)?
        }
        None => {
            sqlx::query_scalar(concat!(
                "WITH claim AS (",
                claim!("$2", "$3", "$4", "$5"),
                ") SELECT $3 = '' OR EXISTS (SELECT FROM claim)"
            ))
            .bind(tx.tenant_id().as_uuid())
            .bind(key.method)
            .bind(key.request_id)
            .bind(&key.fingerprint.0[..])
            .bind(reply)
            .fetch_one(tx.conn())
            .await?
        }
    };
    if claimed {
        Ok(Claim::New)
    } else {
        replay(tx, key).await
    }
}
