//! Opaque keyset page tokens, signed and bound to the tenant and the filter they were issued
//! for, so a token can neither be forged nor replayed against another tenant or query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::TenantId;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Payload<C> {
    t: TenantId,
    f: String,
    c: C,
}

impl PageTokens {
    pub fn new(secret: &[u8]) -> Self {
        PageTokens {
            key: secret.to_vec(),
        }
    }

    /// A token for the page after `cursor` (the sort key of the last row returned).
    pub fn encode<C: Serialize>(&self, tenant: TenantId, filter: &[u8], cursor: &C) -> String {
        let payload = Payload {
            t: tenant,
            f: filter_hash(filter),
            c: cursor,
        };
        let body = serde_json::to_vec(&payload).expect("cursor serialises");
        let mut mac = self.mac();
        mac.update(&body);
        let signature = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The cursor of a token; None for an empty token (the first page). INVALID_ARGUMENT
    /// naming `page_token` for a token that is malformed, forged, or issued for another tenant
    /// or filter.
    pub fn decode<C: DeserializeOwned>(
        &self,
        token: &str,
        tenant: TenantId,
        filter: &[u8],
    ) -> Result<Option<C>> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || Error::invalid("page_token", "is not a page token of this query");
        let (body, signature) = token.split_once('.').ok_or_else(invalid)?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let payload: Payload<C> = serde_json::from_slice(&body).map_err(|_| invalid())?;
        if payload.t != tenant || payload.f != filter_hash(filter) {
            return Err(invalid());
        }
        Ok(Some(payload.c))
    }

    /// Trims `rows` (fetched with `limit + 1`) to one page and returns the token of the next
    /// page, or an empty string on the last page.
    pub fn finish_page<T, C: Serialize>(
        &self,
        rows: &mut Vec<T>,
        limit: i64,
        tenant: TenantId,
        filter: &[u8],
        cursor: impl Fn(&T) -> C,
    ) -> String {
        if rows.len() as i64 <= limit {
            return String::new();
        }
        rows.truncate(limit as usize);
        match rows.last() {
            Some(last) => self.encode(tenant, filter, &cursor(last)),
            None => String::new(),
        }
    }

    /// One list call's page: its size (`page_size` checked: 0 is the default, negative is
    /// refused, large is capped) and where it starts (`page_token` checked against the tenant
    /// and `filter`, the encoding of everything that narrows the list).
    pub fn page<C: DeserializeOwned>(
        &self,
        tenant: TenantId,
        filter: &[u8],
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<C>> {
        Ok(Page {
            limit: crate::validate::page_size(page_size)?,
            after: self.decode(page_token, tenant, filter)?,
            tenant,
            filter: filter.to_vec(),
            tokens: self.clone(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("hmac takes any key length")
    }
}

/// Where a list call starts, as the caller sent it, for a use case that opens the page itself
/// (when the filter its token is bound to is known only there, as a search's keyed hashes
/// are): [`PageTokens::page`] checks the size and the token.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub size: i32,
    pub token: String,
}

/// A page of a list: how many rows it holds at most, the sort key it starts after, and what
/// the next page's token is bound to. Every list RPC reads its page the same way: `page`, a
/// store query of `limit + 1` rows after `after`, then `finish`.
pub struct Page<C> {
    /// Rows of this page; query one more to know whether another page follows.
    pub limit: i64,
    /// The sort key of the previous page's last row; None on the first page.
    pub after: Option<C>,
    tenant: TenantId,
    filter: Vec<u8>,
    tokens: PageTokens,
}

impl<C: Serialize> Page<C> {
    /// Trims `rows` (fetched with `limit + 1`) to this page and returns the next page's token
    /// (empty on the last page); `cursor` is a row's sort key.
    pub fn finish<T>(&self, rows: &mut Vec<T>, cursor: impl Fn(&T) -> C) -> String {
        self.tokens
            .finish_page(rows, self.limit, self.tenant, &self.filter, cursor)
    }
}

fn filter_hash(filter: &[u8]) -> String {
    let digest = Sha256::digest(filter);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_for_same_tenant_and_filter() {
        let tokens = PageTokens::new(b"secret");
        let tenant = TenantId::new();
        let token = tokens.encode(tenant, b"filter", &("FA-01".to_string(), 7));
        let cursor: Option<(String, i32)> = tokens.decode(&token, tenant, b"filter").unwrap();
        assert_eq!(cursor, Some(("FA-01".to_string(), 7)));
    }

    #[test]
    fn token_is_refused_for_other_tenant_filter_or_key() {
        let tokens = PageTokens::new(b"secret");
        let tenant = TenantId::new();
        let token = tokens.encode(tenant, b"filter", &"x");
        assert!(
            tokens
                .decode::<String>(&token, TenantId::new(), b"filter")
                .is_err()
        );
        assert!(tokens.decode::<String>(&token, tenant, b"other").is_err());
        assert!(
            PageTokens::new(b"other")
                .decode::<String>(&token, tenant, b"filter")
                .is_err()
        );
        assert!(
            tokens
                .decode::<String>("garbage", tenant, b"filter")
                .is_err()
        );
        let mut tampered = token.clone();
        tampered.insert(3, 'A');
        assert!(
            tokens
                .decode::<String>(&tampered, tenant, b"filter")
                .is_err()
        );
    }
}
