//! Secret files that `caseway dev` (and tests) generate: keys and the page-token secret. A
//! secret file is created readable by its owner only from the first byte (never written and
//! then restricted), in a folder only its owner can enter, and never through a symbolic
//! link: a link planted where a key is to be written would otherwise receive the key.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

/// Creates the folder of `path` (mode 0700) when it is missing; refuses a folder that is a
/// symbolic link.
fn private_dir(path: &Path) -> anyhow::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!(
                "{} is a symbolic link; secrets are not written through one",
                dir.display()
            )
        }
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => bail!("{} is not a folder", dir.display()),
        Err(_) => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))
        }
    }
}

/// Writes a new secret file: mode 0600 from its creation, refusing to replace anything
/// already there (a file or a symbolic link, dangling or not).
pub fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    private_dir(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating secret file {}", path.display()))?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing secret file {}", path.display()))
}

/// Writes a secret file with `generate`'s contents unless a regular file is there already;
/// refuses a symbolic link in its place.
pub fn ensure(path: &Path, generate: impl FnOnce() -> Vec<u8>) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symbolic link; secrets are not read or written through one",
            path.display()
        ),
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => bail!("{} is not a file", path.display()),
        Err(_) => write_new(path, &generate()),
    }
}

/// Writes a random secret (32 bytes, base64) unless a file is there already: the page-token
/// secret of a local stack (in production, any 32 bytes or more every replica shares, such as
/// `openssl rand -base64 32`).
pub fn ensure_random(path: &Path) -> anyhow::Result<()> {
    use base64::Engine;
    let secret: [u8; 32] = rand::random();
    ensure(path, || {
        base64::engine::general_purpose::STANDARD
            .encode(secret)
            .into_bytes()
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("caseway-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_secret_is_created_owner_only_in_an_owner_only_folder() {
        let root = scratch();
        let path = root.join("keys").join("secret");
        // A umask cannot widen what the file is created with.
        write_new(&path, b"s3cret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(root.join("keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(std::fs::read(&path).unwrap(), b"s3cret");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_symbolic_link_in_place_of_a_secret_is_refused_and_its_target_untouched() {
        let root = scratch();
        let target = root.join("elsewhere");
        let link = root.join("secret");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_new(&link, b"key").is_err());
        assert!(ensure(&link, || b"key".to_vec()).is_err());
        assert!(!target.exists(), "nothing was written through the link");
        let linked_dir = root.join("linked");
        std::os::unix::fs::symlink(&root, &linked_dir).unwrap();
        assert!(write_new(&linked_dir.join("secret"), b"key").is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_existing_secret_is_kept() {
        let root = scratch();
        let path = root.join("secret");
        ensure(&path, || b"first".to_vec()).unwrap();
        ensure(&path, || b"second".to_vec()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        std::fs::remove_dir_all(root).unwrap();
    }
}
