//! A helper of the store room: each tenant's own PII key, so a tenant's SSNs can be destroyed
//! with its key (crypto-shredding) and not only with its rows.
//!
//! A tenant key is 64 random bytes: an AES-256-GCM key that seals the tenant's SSNs and an
//! HMAC-SHA-256 key for their blind index and the keyed hashes of requests holding them. It is
//! kept in an object store outside the database (`CASEWAY_PII_TENANT_KEYS`), wrapped (sealed)
//! by the deployment's active PII key, bound to its tenant. A backup of the database therefore
//! holds SSNs it cannot open alone; once a purge destroys the tenant's key, nothing opens them.
//! Keys are made on a tenant's first use, race-free across replicas (a create that fails
//! because another replica made the key reads that one), and cached in each process.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use object_store::{PutMode, PutOptions, PutPayload};
use sha2::Sha256;

use caseway_platform::TenantId;
use caseway_platform::objects::Objects;
use caseway_platform::sealing;

use crate::pii::{PiiCipher, Sealed};

/// The key id of a value sealed with its tenant's key; any other id names a deployment key
/// (values sealed before tenants had keys of their own).
pub const TENANT_KEY_ID: &str = "tenant";

/// One tenant's key.
pub struct TenantKey {
    cipher: Aes256Gcm,
    hash_key: [u8; 32],
}

impl TenantKey {
    fn from_bytes(bytes: &[u8]) -> anyhow::Result<TenantKey> {
        anyhow::ensure!(bytes.len() == 64, "a tenant key is 64 bytes");
        let cipher = Aes256Gcm::new_from_slice(&bytes[..32]).expect("32 bytes");
        let hash_key = bytes[32..].try_into().expect("32 bytes");
        Ok(TenantKey { cipher, hash_key })
    }

    pub fn seal(&self, plaintext: &str, context: &[u8]) -> Sealed {
        Sealed {
            key_id: TENANT_KEY_ID.to_string(),
            bytes: sealing::seal(&self.cipher, plaintext.as_bytes(), context),
        }
    }

    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> anyhow::Result<String> {
        anyhow::ensure!(
            sealed.key_id == TENANT_KEY_ID,
            "not sealed with the tenant's key"
        );
        Ok(String::from_utf8(sealing::open(
            &self.cipher,
            &sealed.bytes,
            context,
        )?)?)
    }

    /// The keyed hash of `value` for exact-match search.
    pub fn blind_index(&self, value: &str) -> Vec<u8> {
        self.keyed_hash(value.as_bytes())
    }

    /// The keyed hash of `bytes`: what may be stored of something holding a personal
    /// identifier (a request's fingerprint).
    pub fn keyed_hash(&self, bytes: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key).expect("any length");
        mac.update(bytes);
        mac.finalize().into_bytes().to_vec()
    }
}

/// The tenants' keys: where they are kept, the deployment key that wraps them, and those this
/// process has read.
pub struct TenantKeys {
    wrap: Arc<PiiCipher>,
    objects: Objects,
    cache: Mutex<HashMap<TenantId, Arc<TenantKey>>>,
}

impl TenantKeys {
    /// The keys at `location` (`CASEWAY_PII_TENANT_KEYS`; empty for `tenant-keys` in
    /// `data_dir`), wrapped by `wrap`.
    pub fn open(wrap: Arc<PiiCipher>, location: &str, data_dir: &FsPath) -> anyhow::Result<Self> {
        let objects = Objects::open(location, &data_dir.join("tenant-keys"))?;
        Ok(Self::in_store(wrap, objects))
    }

    /// The keys kept in `objects`, wrapped by `wrap`.
    pub fn in_store(wrap: Arc<PiiCipher>, objects: Objects) -> Self {
        TenantKeys {
            wrap,
            objects,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The deployment's keys, for values sealed before tenants had their own.
    pub fn deployment(&self) -> &PiiCipher {
        &self.wrap
    }

    /// The tenant's key, made if it has none.
    pub async fn key(&self, tenant: TenantId) -> anyhow::Result<Arc<TenantKey>> {
        if let Some(key) = self.existing(tenant).await? {
            return Ok(key);
        }
        let bytes: [u8; 64] = std::array::from_fn(|_| rand::random());
        let text = self.wrapped(tenant, &bytes);
        let made = self
            .objects
            .store
            .put_opts(
                &self.path(tenant),
                PutPayload::from(text.into_bytes()),
                PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                },
            )
            .await;
        match made {
            Ok(_) => {
                let key = Arc::new(TenantKey::from_bytes(&bytes)?);
                self.lock().insert(tenant, key.clone());
                Ok(key)
            }
            // Another replica made it first: use that one.
            Err(object_store::Error::AlreadyExists { .. }) => self
                .existing(tenant)
                .await?
                .context("a tenant key made elsewhere is gone"),
            Err(error) => Err(error).context("storing a tenant key"),
        }
    }

    /// The tenant's key if it has one.
    pub async fn existing(&self, tenant: TenantId) -> anyhow::Result<Option<Arc<TenantKey>>> {
        if let Some(key) = self.lock().get(&tenant) {
            return Ok(Some(key.clone()));
        }
        let text = match self.objects.store.get(&self.path(tenant)).await {
            Ok(object) => object.bytes().await.context("reading a tenant key")?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error).context("reading a tenant key"),
        };
        let key = Arc::new(self.unwrap(tenant, &String::from_utf8_lossy(&text))?);
        self.lock().insert(tenant, key.clone());
        Ok(Some(key))
    }

    /// Destroys the tenant's key: nothing sealed with it opens again. Whether there was one.
    pub async fn destroy(&self, tenant: TenantId) -> anyhow::Result<bool> {
        self.lock().remove(&tenant);
        match self.objects.store.delete(&self.path(tenant)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error).context("destroying a tenant key"),
        }
    }

    /// Opens a value sealed with the tenant's key or, sealed before, a deployment key.
    pub async fn open_sealed(
        &self,
        tenant: TenantId,
        sealed: &Sealed,
        context: &[u8],
    ) -> anyhow::Result<String> {
        if sealed.key_id != TENANT_KEY_ID {
            return self.wrap.open(sealed, context);
        }
        match self.existing(tenant).await? {
            Some(key) => key.open(sealed, context),
            None => bail!("the tenant's key is gone: its sealed values no longer open"),
        }
    }

    fn path(&self, tenant: TenantId) -> object_store::path::Path {
        self.objects.path(&format!("{tenant}.key"))
    }

    /// What binds a wrapped key to its tenant.
    fn context(tenant: TenantId) -> Vec<u8> {
        [
            b"caseway tenant key ".as_slice(),
            tenant.as_uuid().as_bytes(),
        ]
        .concat()
    }

    /// The key file: the wrapping key's id, then the wrapped key, in base64.
    fn wrapped(&self, tenant: TenantId, bytes: &[u8; 64]) -> String {
        let sealed = self
            .wrap
            .seal(&STANDARD.encode(bytes), &Self::context(tenant));
        format!("{}\n{}\n", sealed.key_id, STANDARD.encode(&sealed.bytes))
    }

    fn unwrap(&self, tenant: TenantId, text: &str) -> anyhow::Result<TenantKey> {
        let mut lines = text.lines();
        let (Some(key_id), Some(bytes)) = (lines.next(), lines.next()) else {
            bail!("a tenant key file is two lines");
        };
        let sealed = Sealed {
            key_id: key_id.trim().to_string(),
            bytes: STANDARD
                .decode(bytes.trim())
                .context("a tenant key is base64")?,
        };
        let opened = self
            .wrap
            .open(&sealed, &Self::context(tenant))
            .context("unwrapping a tenant key")?;
        TenantKey::from_bytes(&STANDARD.decode(opened).context("a tenant key is base64")?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<TenantKey>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &FsPath) -> TenantKeys {
        let wrap = Arc::new(PiiCipher::parse(&PiiCipher::generate()).unwrap());
        TenantKeys::open(wrap, "", dir).unwrap()
    }

    #[tokio::test]
    async fn a_tenant_key_seals_for_its_tenant_and_is_gone_once_destroyed() {
        let dir = std::env::temp_dir().join(format!("tenant-keys-{}", uuid::Uuid::new_v4()));
        let keys = keys(&dir);
        let (a, b) = (TenantId::new(), TenantId::new());
        let key = keys.key(a).await.unwrap();
        let sealed = key.seal("123456789", b"a/1");
        assert_eq!(sealed.key_id, TENANT_KEY_ID);
        assert_eq!(
            keys.open_sealed(a, &sealed, b"a/1").await.unwrap(),
            "123456789"
        );
        assert!(
            keys.open_sealed(b, &sealed, b"a/1").await.is_err(),
            "b's key is another"
        );
        assert_ne!(
            key.blind_index("123456789"),
            keys.key(b).await.unwrap().blind_index("123456789")
        );

        // Another process with the same deployment key reads the same key; one with another
        // deployment key cannot unwrap it.
        let again = TenantKeys::open(keys.wrap.clone(), "", &dir).unwrap();
        assert_eq!(
            again.open_sealed(a, &sealed, b"a/1").await.unwrap(),
            "123456789"
        );
        assert!(self::keys(&dir).existing(a).await.is_err());
        let file =
            std::fs::read_to_string(dir.join("tenant-keys").join(format!("{a}.key"))).unwrap();
        assert!(!file.contains(&STANDARD.encode(key.hash_key)));

        assert!(keys.destroy(a).await.unwrap());
        assert!(keys.open_sealed(a, &sealed, b"a/1").await.is_err());
        let fresh = TenantKeys::open(keys.wrap.clone(), "", &dir).unwrap();
        assert!(
            fresh.open_sealed(a, &sealed, b"a/1").await.is_err(),
            "nothing opens it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
