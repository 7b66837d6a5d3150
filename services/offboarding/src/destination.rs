//! Where an export goes: a folder (`file:///a/folder` or a plain path) or an S3-compatible
//! store (`s3://bucket/prefix`, configured by the standard `AWS_*` variables).

pub use caseway_platform::objects::Objects as Destination;

/// The destination named `location`.
pub fn parse(location: &str) -> anyhow::Result<Destination> {
    anyhow::ensure!(!location.trim().is_empty(), "no folder to export to");
    Destination::open(location, std::path::Path::new(location))
}
