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

/// The first reply under `key`, which another transaction has taken.
async fn replay<Resp: Message + Default>(
    tx: &mut impl Scoped,
    key: &Key<'_>,
) -> Result<Claim<Resp>> {
    let (stored_hash, response): (Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, response FROM platform.idempotency_keys \
         WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(key.method)
    .bind(key.request_id)
    .fetch_one(tx.conn())
    .await?;
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
    let Key {
        method,
        request_id,
        fingerprint: Fingerprint(fingerprint),
    } = *key;
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
        Some((hash, _)) if hash != fingerprint => Err(Error::RequestIdReused),
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
    let tenant = tx.tenant_id();
    let columns = outbox::Columns::of(tenant, events);
    // One event as a plain row (cheaper to plan than arrays of one), several through arrays.
    let events_sql = match events {
        [_] => {
            "INSERT INTO platform.outbox \
             (id, tenant_id, event_type, source, subject, occurred_at, payload, traceparent) \
             VALUES ($6[1], $1, $7[1], $8[1], $9[1], now(), $10[1], $11) RETURNING id"
        }
        _ => {
            "INSERT INTO platform.outbox \
             (id, tenant_id, event_type, source, subject, occurred_at, payload, traceparent) \
             SELECT id, $1, event_type, source, subject, now(), payload, $11 \
             FROM UNNEST($6::uuid[], $7::text[], $8::text[], $9::text[], $10::bytea[]) \
             AS e(id, event_type, source, subject, payload) ORDER BY id RETURNING id"
        }
    };
    // The notification is delivered at commit, once however many rows; sent with the rows, it
    // costs no round trip of its own.
    let claimed: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH claim AS ( \
           INSERT INTO platform.idempotency_keys \
           (tenant_id, method, request_id, request_hash, response) \
           SELECT $1, $2, $3, $4, $5 WHERE $3 <> '' ON CONFLICT DO NOTHING RETURNING 1 \
         ), events AS ({events_sql}) \
         SELECT $3 = '' OR EXISTS (SELECT FROM claim), \
           (SELECT pg_notify($12, '') FROM (SELECT 1 FROM events LIMIT 1) AS any_event)"
    )))
    .bind(tenant.as_uuid())
    .bind(key.method)
    .bind(key.request_id)
    .bind(&key.fingerprint.0[..])
    .bind(reply.encode_to_vec())
    .bind(&columns.ids)
    .bind(&columns.types)
    .bind(&columns.sources)
    .bind(&columns.subjects)
    .bind(&columns.payloads)
    .bind(columns.traceparent)
    .bind(outbox::CHANNEL)
    .fetch_one(tx.conn())
    .await?;
    if claimed {
        Ok(Claim::New)
    } else {
        replay(tx, key).await
    }
}
