//! The Caseway binary: one binary, many targets.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = caseway::cli::Cli::parse();
    caseway::cli::run(cli).await
}
