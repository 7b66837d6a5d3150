//! Where an export goes: a folder (`file:///a/folder` or a plain path) or an S3-compatible
//! store (`s3://bucket/prefix`, configured by the standard `AWS_*` variables: endpoint,
//! region, credentials).

use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

/// An object store and the prefix under which an export's files are written.
#[derive(Clone, Debug)]
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// What the user named, as the ledger records it.
    pub location: String,
}

impl Destination {
    pub fn parse(location: &str) -> anyhow::Result<Destination> {
        let location = location.trim();
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "`{location}` names no bucket");
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("the S3 store of {location}"))?;
            return Ok(Destination {
                store: Arc::new(store),
                prefix: Path::from(prefix.trim_matches('/')),
                location: location.to_string(),
            });
        }
        let folder = location.strip_prefix("file://").unwrap_or(location);
        anyhow::ensure!(!folder.is_empty(), "no folder to export to");
        std::fs::create_dir_all(folder).with_context(|| format!("creating {folder}"))?;
        let store = LocalFileSystem::new_with_prefix(folder)
            .with_context(|| format!("the folder {folder}"))?;
        Ok(Destination {
            store: Arc::new(store),
            prefix: Path::default(),
            location: location.to_string(),
        })
    }

    /// The path of `name` (slash-separated) under the prefix.
    pub fn path(&self, name: &str) -> Path {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.child(part))
    }
}
