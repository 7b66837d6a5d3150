//! The Caseway binary, built in the fault suite so that its tests can run nodes as processes.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    caseway::cli::run(caseway::cli::Cli::parse()).await
}
