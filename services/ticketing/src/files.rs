//! Where attachments' images are kept: an object store, the local file system by default or
//! any S3-compatible store (`CASEWAY_TICKETING_ATTACHMENTS`). A row in `ticketing.attachments`
//! says whose an object is; an object is written before its row and never changed after (a
//! redaction writes a new one).

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use caseway_platform::config::Config;
use caseway_platform::error::{Error, Result};

/// The object store of attachments.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
}

impl Files {
    /// The store the configuration names: `CASEWAY_TICKETING_ATTACHMENTS` empty (a folder
    /// `attachments` in the data folder), `file:///a/folder`, or `s3://bucket` (with the
    /// endpoint, region and credentials of `CASEWAY_TICKETING_ATTACHMENTS_S3_*`).
    pub fn open(config: &Config) -> anyhow::Result<Files> {
        let url = config.ticketing_attachments.trim();
        let store: Arc<dyn ObjectStore> = if let Some(bucket) = url.strip_prefix("s3://") {
            let bucket = bucket.trim_end_matches('/');
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&config.ticketing_attachments_s3_region);
            let endpoint = config.ticketing_attachments_s3_endpoint.trim();
            if !endpoint.is_empty() {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if !config.ticketing_attachments_s3_access_key_id.is_empty() {
                builder =
                    builder.with_access_key_id(&config.ticketing_attachments_s3_access_key_id);
            }
            if let Some(file) = &config.ticketing_attachments_s3_secret_access_key_file {
                let secret = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                builder = builder.with_secret_access_key(secret.trim());
            }
            Arc::new(builder.build().context("the S3 attachment store")?)
        } else {
            let folder = match url.strip_prefix("file://") {
                Some(folder) => std::path::PathBuf::from(folder),
                None if url.is_empty() => config.data_dir.join("attachments"),
                None => anyhow::bail!("`{url}` is not file:///a/folder or s3://bucket"),
            };
            std::fs::create_dir_all(&folder)
                .with_context(|| format!("creating {}", folder.display()))?;
            Arc::new(LocalFileSystem::new_with_prefix(&folder)?)
        };
        Ok(Files { store })
    }

    /// The store itself, for a tenant's export and purge.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The whole object (an attachment is at most 10 MiB).
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let object = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(unavailable)?;
        object.bytes().await.map_err(unavailable)
    }

    /// The object as it comes from the store, in pieces of at most `chunk` bytes.
    pub async fn stream(
        &self,
        key: &str,
        chunk: usize,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let object = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(unavailable)?;
        Ok(object
            .into_stream()
            .map_err(unavailable)
            .map_ok(move |bytes| {
                let pieces: Vec<Result<Bytes>> = (0..bytes.len())
                    .step_by(chunk)
                    .map(|at| Ok(bytes.slice(at..(at + chunk).min(bytes.len()))))
                    .collect();
                futures::stream::iter(pieces)
            })
            .try_flatten())
    }

    /// Removes an object no row names (best effort: an orphan costs space, not correctness).
    pub async fn forget(&self, key: &str) {
        if let Err(error) = self.store.delete(&Path::from(key)).await {
            tracing::warn!(key, error = %error, "an unused attachment object stays");
        }
    }
}

/// The store failed: the caller may try again; an object a row names but the store does not
/// hold is ours to mend, not the caller's to retry.
fn unavailable(error: object_store::Error) -> Error {
    match error {
        object_store::Error::NotFound { .. } => Error::internal(anyhow::anyhow!(
            "an attachment's object is missing from the store: {error}"
        )),
        error => Error::Unavailable(format!("the attachment store: {error}")),
    }
}
