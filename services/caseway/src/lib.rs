//! The `caseway` binary's wiring, kept in a library so integration tests start the same nodes
//! in-process: which services a target list turns on, where they reach each other, migrations,
//! and the demo data of `caseway dev`.

pub mod cli;

/// Every process that links Caseway (the binary, and the tests and benchmarks that run its
/// nodes in-process) allocates through mimalloc: a server that builds and drops many small
/// buffers per call spends markedly less in it than in the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use anyhow::{Context, bail};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use caseway_platform::Config;
use caseway_platform::server::{NodeBuilder, Platform, RunningNode};

/// The services one process can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Tenancy,
    Catalog,
    Clients,
    Records,
    Authorizations,
    Eligibility,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Tenancy,
        Target::Catalog,
        Target::Clients,
        Target::Records,
        Target::Authorizations,
        Target::Eligibility,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Target::Tenancy => "tenancy",
            Target::Catalog => "catalog",
            Target::Clients => "clients",
            Target::Records => "records",
            Target::Authorizations => "authorizations",
            Target::Eligibility => "eligibility",
        }
    }
}

/// Parses `all` or a comma list such as `catalog,tenancy`.
pub fn parse_targets(text: &str) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "all" {
            return Ok(Target::ALL.to_vec());
        }
        let target = Target::ALL
            .into_iter()
            .find(|t| t.name() == part)
            .with_context(|| {
                format!("unknown target {part}; expected all, tenancy, catalog, clients, records, authorizations or eligibility")
            })?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        bail!("no target given");
    }
    Ok(targets)
}

/// Every service's migrations, applied in version order by `caseway migrate`.
pub fn migrators() -> [&'static Migrator; 7] {
    [
        &caseway_platform::MIGRATOR,
        &caseway_tenancy::MIGRATOR,
        &caseway_catalog::MIGRATOR,
        &caseway_clients::MIGRATOR,
        &caseway_records::MIGRATOR,
        &caseway_authorizations::MIGRATOR,
        &caseway_eligibility::MIGRATOR,
    ]
}

/// Starts a node serving `targets` on the given listeners. Calls between services go over
/// gRPC to the configured endpoint, or to this process when none is configured.
pub async fn start(
    config: Config,
    targets: &[Target],
    grpc_listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningNode> {
    let own = caseway_platform::tls::own_endpoint(&config, grpc_listener.local_addr()?.port());
    let tenancy_endpoint = config
        .tenancy_endpoint
        .clone()
        .unwrap_or_else(|| own.clone());
    let catalog_endpoint = config
        .catalog_endpoint
        .clone()
        .unwrap_or_else(|| own.clone());
    let clients_endpoint = config
        .clients_endpoint
        .clone()
        .unwrap_or_else(|| own.clone());
    let authorizations_endpoint = config
        .authorizations_endpoint
        .clone()
        .unwrap_or_else(|| own.clone());
    let records_endpoint = config
        .records_endpoint
        .clone()
        .unwrap_or_else(|| own.clone());
    let eligibility_endpoint = config
        .eligibility_endpoint
        .clone()
        .unwrap_or_else(|| own.clone());
    let platform: Arc<Platform> = Platform::new(config)?;
    let mut node = NodeBuilder::new();
    for target in targets {
        match target {
            Target::Tenancy => caseway_tenancy::register(&platform, &mut node),
            Target::Catalog => caseway_catalog::register(&platform, &mut node, &tenancy_endpoint)?,
            Target::Clients => caseway_clients::register(&platform, &mut node, &catalog_endpoint)?,
            Target::Records => caseway_records::register(
                &platform,
                &mut node,
                &catalog_endpoint,
                &clients_endpoint,
                &authorizations_endpoint,
                &eligibility_endpoint,
            )?,
            Target::Authorizations => caseway_authorizations::register(
                &platform,
                &mut node,
                &catalog_endpoint,
                &clients_endpoint,
                &records_endpoint,
                &eligibility_endpoint,
            )?,
            Target::Eligibility => caseway_eligibility::register(&platform, &mut node),
        }
    }
    caseway_platform::server::start(platform, node, grpc_listener, metrics_listener, shutdown).await
}
