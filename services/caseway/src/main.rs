//! The Caseway binary: one binary, many targets.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    caseway::no_transparent_huge_pages();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cli = caseway::cli::Cli::parse();
    runtime.block_on(caseway::cli::run(cli))
}
