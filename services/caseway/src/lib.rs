//! The `caseway` binary's wiring, kept in a library so integration tests start the same nodes
//! in-process: which services a target list turns on, where they reach each other, migrations,
//! and the demo data of `caseway dev`.

pub mod cli;
pub mod offboard;

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
    Ticketing,
    Hmis,
}

impl Target {
    pub const ALL: [Target; 8] = [
        Target::Tenancy,
        Target::Catalog,
        Target::Clients,
        Target::Records,
        Target::Authorizations,
        Target::Eligibility,
        Target::Ticketing,
        Target::Hmis,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Target::Tenancy => "tenancy",
            Target::Catalog => "catalog",
            Target::Clients => "clients",
            Target::Records => "records",
            Target::Authorizations => "authorizations",
            Target::Eligibility => "eligibility",
            Target::Ticketing => "ticketing",
            Target::Hmis => "hmis",
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
                format!("unknown target {part}; expected all, tenancy, catalog, clients, records, authorizations, eligibility, ticketing or hmis")
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
pub fn migrators() -> [&'static Migrator; 9] {
    [
        &caseway_platform::MIGRATOR,
        &caseway_tenancy::MIGRATOR,
        &caseway_catalog::MIGRATOR,
        &caseway_clients::MIGRATOR,
        &caseway_records::MIGRATOR,
        &caseway_authorizations::MIGRATOR,
        &caseway_eligibility::MIGRATOR,
        &caseway_ticketing::MIGRATOR,
        &caseway_hmis::MIGRATOR,
    ]
}

/// The variable that names where `peer` is reached (`CASEWAY_CATALOG_ENDPOINT`).
pub fn endpoint_variable(peer: Target) -> String {
    format!("CASEWAY_{}_ENDPOINT", peer.name().to_uppercase())
}

/// Where the targets served here reach their peers: the configured endpoint, or this process
/// when it serves the peer itself.
struct Peers {
    configured: Vec<(Target, Option<String>)>,
    targets: Vec<Target>,
    own: String,
}

impl Peers {
    fn new(config: &Config, targets: &[Target], own: String) -> Peers {
        let configured = vec![
            (Target::Tenancy, config.tenancy_endpoint.clone()),
            (Target::Catalog, config.catalog_endpoint.clone()),
            (Target::Clients, config.clients_endpoint.clone()),
            (Target::Records, config.records_endpoint.clone()),
            (
                Target::Authorizations,
                config.authorizations_endpoint.clone(),
            ),
            (Target::Eligibility, config.eligibility_endpoint.clone()),
        ];
        Peers {
            configured,
            targets: targets.to_vec(),
            own,
        }
    }

    /// Where `by` reaches `peer`. Unset and not served here is an error naming the variable:
    /// calling this process instead would answer every call UNIMPLEMENTED.
    fn endpoint(&self, by: Target, peer: Target) -> anyhow::Result<String> {
        let configured = self
            .configured
            .iter()
            .find(|(target, _)| *target == peer)
            .and_then(|(_, endpoint)| endpoint.clone());
        match configured {
            Some(endpoint) => Ok(endpoint),
            None if self.targets.contains(&peer) => Ok(self.own.clone()),
            None => bail!(
                "{} is not set: the {} target calls the {} service, which this process does not serve",
                endpoint_variable(peer),
                by.name(),
                peer.name()
            ),
        }
    }
}

/// Turns transparent huge pages off for this process; the binary does it before its runtime's
/// threads allocate, and the integration tests and benchmarks before they start a node, so they
/// measure the node the binary runs. The allocator (mimalloc) asks for them where the kernel
/// gives them on request (`madvise`, as most distributions ship), and a 2 MiB page is resident
/// once any byte of it is touched, and zeroed whole by the call that first touches it:
/// - memory: they more than doubled a node's resident set (every target: 161 MB at peak with
///   them, 91 MB without) for no throughput the benchmarks could measure;
/// - latency: a call that grew the heap waited 5-8 ms while the kernel zeroed a fresh one
///   (docs/benchmarks.md, CheckEligibility).
pub fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of this process; on
    // a kernel without it the call fails and nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Starts a node serving `targets` on the given listeners. Calls between services go over
/// gRPC to the configured endpoint, or to this process when it serves the peer too; a peer
/// neither configured nor served here is an error before anything serves.
pub async fn start(
    config: Config,
    targets: &[Target],
    grpc_listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningNode> {
    let own = caseway_platform::tls::own_endpoint(&config, grpc_listener.local_addr()?.port());
    let peers = Peers::new(&config, targets, own);
    let platform: Arc<Platform> = Platform::new(config)?;
    let mut node = NodeBuilder::new();
    for &target in targets {
        let at = |peer| peers.endpoint(target, peer);
        use Target::*;
        match target {
            Tenancy => caseway_tenancy::register(&platform, &mut node),
            Catalog => caseway_catalog::register(&platform, &mut node, &at(Tenancy)?)?,
            Clients => caseway_clients::register(&platform, &mut node, &at(Catalog)?)?,
            Records => caseway_records::register(
                &platform,
                &mut node,
                &at(Catalog)?,
                &at(Clients)?,
                &at(Authorizations)?,
                &at(Eligibility)?,
            )?,
            Authorizations => caseway_authorizations::register(
                &platform,
                &mut node,
                &at(Catalog)?,
                &at(Clients)?,
                &at(Records)?,
                &at(Eligibility)?,
            )?,
            Eligibility => caseway_eligibility::register(&platform, &mut node),
            Ticketing => caseway_ticketing::register(&platform, &mut node)?,
            Hmis => caseway_hmis::register(
                &platform,
                &mut node,
                Arc::new(offboard::SsnKeysOf(Arc::new(offboard::tenant_keys(
                    &platform.config,
                )?))),
            )?,
        }
    }
    caseway_platform::server::start(platform, node, grpc_listener, metrics_listener, shutdown).await
}
