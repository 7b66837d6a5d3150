//! Authenticated sealing (AES-256-GCM) as every sealed value in Caseway is laid out: a random
//! 12-byte nonce, then the ciphertext and its tag, bound to associated data that names what
//! the value belongs to, so it opens nowhere else.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};

/// `plaintext` sealed with `cipher`, bound to `aad`: nonce, ciphertext and tag.
pub fn seal(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let sealed = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption does not fail for short inputs");
    [nonce.as_slice(), &sealed].concat()
}

/// What [`seal`] sealed with `cipher` and `aad`; an error for anything else.
pub fn open(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(sealed.len() >= 12, "sealed value too short");
    let (nonce, ciphertext) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().expect("split at 12");
    cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| anyhow::anyhow!("the sealed value does not open with this key here"))
}

/// Opens an SSN as the clients service sealed it (with the tenant's key, or a deployment key
/// for one sealed before tenants had keys), for what reads SSNs outside that service: a
/// tenant's full export, the HMIS export. The binary gives it, since only the clients crate
/// holds the keys.
pub trait SsnOpener: Send + Sync {
    fn open(
        &self,
        tenant: crate::TenantId,
        client: uuid::Uuid,
        key_id: &str,
        sealed: &[u8],
    ) -> anyhow::Result<String>;
}
