//! Object stores named by a location: a folder (`file:///a/folder`, or a plain path) or an
//! S3-compatible store (`s3://bucket/prefix`, configured by the standard `AWS_*` variables:
//! `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`, `AWS_CONDITIONAL_PUT`).

use std::path::Path as FsPath;
use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

/// An object store and the prefix its objects are kept under.
#[derive(Clone, Debug)]
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The location as it was named.
    pub location: String,
}

impl Objects {
    /// The store at `location`; an empty location is the folder `default_folder`. A folder is
    /// created when missing.
    pub fn open(location: &str, default_folder: &FsPath) -> anyhow::Result<Objects> {
        let location = location.trim();
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "`{location}` names no bucket");
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("the S3 store of {location}"))?;
            return Ok(Objects {
                store: Arc::new(store),
                prefix: Path::from(prefix.trim_matches('/')),
                location: location.to_string(),
            });
        }
        let folder = match location.strip_prefix("file://").unwrap_or(location) {
            "" => default_folder.to_path_buf(),
            folder => folder.into(),
        };
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let store = LocalFileSystem::new_with_prefix(&folder)
            .with_context(|| format!("the folder {}", folder.display()))?;
        Ok(Objects {
            store: Arc::new(store),
            prefix: Path::default(),
            location: folder.display().to_string(),
        })
    }

    /// The path of `name` (slash-separated) under the prefix.
    pub fn path(&self, name: &str) -> Path {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.child(part))
    }
}

/// An object being written through a buffered (multipart, for S3) upload, with its size and
/// SHA-256 kept as it goes, so a file is never held whole in memory.
pub struct Counted {
    out: object_store::buffered::BufWriter,
    sha: sha2::Sha256,
    bytes: u64,
}

impl Counted {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path) -> Counted {
        use sha2::Digest;
        Counted {
            out: object_store::buffered::BufWriter::new(store, path),
            sha: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        self.sha.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes).await?;
        Ok(())
    }

    /// Completes the object: its size and SHA-256 in hex.
    pub async fn finish(mut self) -> anyhow::Result<(u64, String)> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        self.out.shutdown().await?;
        Ok((self.bytes, hex(&self.sha.finalize())))
    }
}

/// Bytes in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
