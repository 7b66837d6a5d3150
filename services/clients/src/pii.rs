//! A helper of the store room: protection of personal identifiers (SSNs). An authenticated
//! cipher (AES-256-GCM) whose keys carry ids, so keys rotate (new writes use the active key;
//! old rows still decrypt), and a keyed hash (HMAC-SHA-256, per tenant) for exact-match search
//! without decrypting. The ciphertext is bound to its tenant and row, so it cannot be moved to
//! another.
//!
//! The key file holds one entry a line: `hash=<base64 32 bytes>`, `key.<id>=<base64 32
//! bytes>` for each key, and `active=<id>`.

use std::collections::HashMap;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use caseway_platform::TenantId;
use caseway_platform::sealing;

pub struct PiiCipher {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
    hash_key: Vec<u8>,
}

/// An encrypted value and the id of the key that encrypted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// The 12-byte nonce followed by the ciphertext and tag.
    pub bytes: Vec<u8>,
}

impl PiiCipher {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading PII keys {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (mut active, mut hash_key, mut keys) = (None, None, HashMap::new());
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (name, value) = line.split_once('=').context("a key line is name=value")?;
            match name.trim() {
                "active" => active = Some(value.trim().to_string()),
                "hash" => hash_key = Some(decode_key(value)?),
                other => {
                    let id = other
                        .strip_prefix("key.")
                        .context("unknown line in the key file")?;
                    let cipher = Aes256Gcm::new_from_slice(&decode_key(value)?)
                        .map_err(|_| anyhow::anyhow!("a key must be 32 bytes"))?;
                    keys.insert(id.to_string(), cipher);
                }
            }
        }
        let active = active.context("the key file names no active key")?;
        if !keys.contains_key(&active) {
            bail!("the active key {active} is not in the key file");
        }
        Ok(PiiCipher {
            active,
            keys,
            hash_key: hash_key.context("the key file has no hash key")?,
        })
    }

    /// Text of a new key file with one key.
    pub fn generate() -> String {
        let key: [u8; 32] = rand::random();
        let hash: [u8; 32] = rand::random();
        format!(
            "# Caseway PII keys: keep secret; add key.<id> lines and move active= to rotate.\nhash={}\nkey.k1={}\nactive=k1\n",
            STANDARD.encode(hash),
            STANDARD.encode(key)
        )
    }

    pub fn seal(&self, plaintext: &str, context: &[u8]) -> Sealed {
        Sealed {
            key_id: self.active.clone(),
            bytes: sealing::seal(&self.keys[&self.active], plaintext.as_bytes(), context),
        }
    }

    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> anyhow::Result<String> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .with_context(|| format!("no PII key {}", sealed.key_id))?;
        Ok(String::from_utf8(sealing::open(
            cipher,
            &sealed.bytes,
            context,
        )?)?)
    }

    /// The keyed hash of `value` for exact-match search within a tenant.
    pub fn blind_index(&self, tenant: TenantId, value: &str) -> Vec<u8> {
        self.keyed_hash(tenant, value.as_bytes())
    }

    /// The keyed hash of `bytes` within a tenant: what may be stored of something holding a
    /// personal identifier (a request's fingerprint), since a plain hash of it could be
    /// reversed by trying every number.
    pub fn keyed_hash(&self, tenant: TenantId, bytes: &[u8]) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key).expect("any key length");
        mac.update(tenant.as_uuid().as_bytes());
        mac.update(bytes);
        mac.finalize().into_bytes().to_vec()
    }
}

/// What binds a client's sealed SSN to its row (its tenant's id then its own, as bytes): it
/// opens nowhere else.
pub fn ssn_context(tenant: TenantId, client: uuid::Uuid) -> Vec<u8> {
    [tenant.as_uuid().as_bytes().as_slice(), client.as_bytes()].concat()
}

fn decode_key(value: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = STANDARD.decode(value.trim()).context("a key is base64")?;
    if bytes.len() != 32 {
        bail!("a key must be 32 bytes");
    }
    Ok(bytes)
}

/// Writes a new key file unless one exists.
pub fn ensure_key_file(path: &Path) -> anyhow::Result<()> {
    caseway_platform::secrets::ensure(path, || PiiCipher::generate().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_in_its_context() {
        let cipher = PiiCipher::parse(&PiiCipher::generate()).unwrap();
        let sealed = cipher.seal("123456789", b"tenant-a/client-1");
        assert!(!sealed.bytes.windows(9).any(|w| w == b"123456789"));
        assert_eq!(
            cipher.open(&sealed, b"tenant-a/client-1").unwrap(),
            "123456789"
        );
        assert!(cipher.open(&sealed, b"tenant-b/client-1").is_err());
    }

    #[test]
    fn rotated_keys_still_open_old_values() {
        let hash = format!("hash={}", STANDARD.encode([1u8; 32]));
        let k1 = format!("key.k1={}", STANDARD.encode([7u8; 32]));
        let k2 = format!("key.k2={}", STANDARD.encode([9u8; 32]));
        let before = PiiCipher::parse(&format!("{hash}\n{k1}\nactive=k1\n")).unwrap();
        let rotated = PiiCipher::parse(&format!("{hash}\n{k1}\n{k2}\nactive=k2\n")).unwrap();
        let sealed = before.seal("987654321", b"c");
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(rotated.open(&sealed, b"c").unwrap(), "987654321");
        assert_eq!(rotated.seal("x", b"c").key_id, "k2");
        let other = PiiCipher::parse(&PiiCipher::generate()).unwrap();
        assert!(
            other.open(&sealed, b"c").is_err(),
            "another key cannot open it"
        );
    }

    #[test]
    fn blind_index_is_stable_and_per_tenant() {
        let cipher = PiiCipher::parse(&PiiCipher::generate()).unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        assert_eq!(
            cipher.blind_index(a, "123456789"),
            cipher.blind_index(a, "123456789")
        );
        assert_ne!(
            cipher.blind_index(a, "123456789"),
            cipher.blind_index(b, "123456789")
        );
    }
}
