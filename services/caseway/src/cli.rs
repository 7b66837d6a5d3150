//! The command line: `serve`, `migrate`, `dev`, `token issue`, `tenant ...`, `events ...`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use caseway_api::tenancy::v1 as tenancy_pb;
use caseway_platform::auth::{Principal, Role, TokenIssuer, ensure_key_pair, ensure_private_key};
use caseway_platform::db::{self, Db};
use caseway_platform::tenant_status::TenantStatusCache;
use caseway_platform::{Config, TenantId, revocation, telemetry};
use caseway_tenancy::Tenancy;
use caseway_tenancy::convert;
use caseway_tenancy::domain::Tenant;

#[derive(Parser)]
#[command(
    name = "caseway",
    version,
    about = "Multi-tenant case management back end"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serves the given targets until SIGTERM or Ctrl-C.
    Serve {
        /// `all`, or a comma list of tenancy, catalog.
        #[arg(long, default_value = "all")]
        target: String,
    },
    /// Creates the database if needed and applies every migration (as the schema owner).
    Migrate,
    /// The local stack: migrate, seed a demo tenant, serve all, print how to call it.
    Dev,
    /// Development tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Tenant lifecycle, for the hosting provider.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Events a consumer parked after its last attempt: list them, put them back.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The eligibility service's read model of clients' facts.
    Eligibility {
        #[command(subcommand)]
        command: EligibilityCommand,
    },
    /// The Tenant operator: reconciles `Tenant` objects (caseway.io/v1alpha1) into the tenancy
    /// service, or prints their CRD.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The settings.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Asks the node on this machine (`CASEWAY_METRICS_LISTEN`) for `/readyz`, or another
    /// path: exits 0 when it answers 200. A container health check for an image with no shell.
    Probe {
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
}

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Reconciles until SIGTERM, while this replica holds the Lease (one replica at a time).
    Run {
        /// The tenancy service's gRPC endpoint.
        #[arg(
            long,
            env = "CASEWAY_OPERATOR_TENANCY_ENDPOINT",
            default_value = "http://127.0.0.1:50051"
        )]
        tenancy_endpoint: String,
        /// PEM certificate authorities an `https://` tenancy endpoint is checked against,
        /// instead of the system's roots.
        #[arg(long, env = "CASEWAY_OPERATOR_TENANCY_CA_FILE")]
        tenancy_ca_file: Option<std::path::PathBuf>,
        /// A file holding a platform administrator's bearer token (read at every call, so a
        /// rotated secret takes effect without a restart).
        #[arg(long, env = "CASEWAY_OPERATOR_TOKEN_FILE")]
        token_file: std::path::PathBuf,
        /// The namespace of the Lease: the operator's own.
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        namespace: String,
        /// This replica's name in the Lease and on events: the pod's name.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Seconds a Lease holds without renewal.
        #[arg(long, default_value_t = 15)]
        lease_seconds: u64,
        /// A Job as JSON: the template of the Jobs that offboard deleted tenants asking for it
        /// (the chart renders it); without it such a Tenant is held, Degraded.
        #[arg(long, env = "CASEWAY_OPERATOR_OFFBOARDING_JOB_TEMPLATE")]
        offboarding_job_template: Option<std::path::PathBuf>,
    },
    /// Prints the Tenant CRD (YAML) as generated from the operator's types.
    Crd,
}

#[derive(Subcommand)]
pub enum EligibilityCommand {
    /// Reads one tenant's facts again from the catalog, clients and records services' APIs
    /// (at their configured endpoints, else this host's gRPC port) and keeps what is newer
    /// than what the events left.
    Rebuild {
        /// The tenant's id or slug.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Prints every setting with its variable, default and meaning (docs/configuration.md).
    Reference,
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Lists the events parked for a consumer, oldest first (they stay parked).
    Parked {
        /// The consumer, e.g. authorizations.drawdown.
        #[arg(long)]
        consumer: String,
    },
    /// Puts parked events back on the consumer's queue for another try.
    Replay {
        #[arg(long)]
        consumer: String,
        /// Only these event ids (comma list); every parked event when omitted.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<Uuid>,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Signs a token with the private key of the configuration.
    Issue {
        /// Tenant slug or id; omit for hosting-provider staff (platform_admin, support_agent).
        #[arg(long)]
        tenant: Option<String>,
        /// Comma list: caseworker, supervisor, tenant_admin, support_agent, platform_admin.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Comma list of security organization ids or codes.
        #[arg(long, value_delimiter = ',')]
        orgs: Vec<String>,
        /// Comma list of permissions, e.g. clients.read_ssn.
        #[arg(long, value_delimiter = ',')]
        perms: Vec<String>,
        #[arg(long, default_value = "dev-user")]
        user: String,
        /// Lifetime in hours (at most CASEWAY_JWT_MAX_LIFETIME_SECONDS).
        #[arg(long, default_value_t = 12)]
        hours: i64,
    },
    /// Revokes one token (by its id) or every token of a user issued until now (or a time);
    /// every node refuses them within a second.
    Revoke {
        /// The token's id (its `jti` claim).
        #[arg(long, conflicts_with_all = ["user", "tenant", "before"], required_unless_present = "user")]
        id: Option<String>,
        /// The user (the tokens' `sub` claim).
        #[arg(long)]
        user: Option<String>,
        /// The user's tenant, slug or id; omit for the hosting provider's staff.
        #[arg(long, requires = "user")]
        tenant: Option<String>,
        /// Revoke the user's tokens issued at or before this time (RFC 3339); now by default.
        #[arg(long, requires = "user")]
        before: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    List,
    Suspend {
        /// Tenant slug or id.
        tenant: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Resume {
        /// Tenant slug or id.
        tenant: String,
    },
    /// Writes every row the tenant has, in every schema, as JSON Lines per table with its
    /// attachments and a manifest of row counts and checksums (docs/offboarding.md).
    Export {
        /// Tenant slug or id.
        tenant: String,
        /// A folder, or s3://bucket/prefix (configured by the AWS_* variables).
        #[arg(long)]
        to: String,
        /// The tenant's key for its SSNs (32 bytes in base64); `--new-ssn-key` writes one.
        #[arg(long)]
        ssn_key_file: std::path::PathBuf,
        /// Writes a new key to --ssn-key-file first (refusing to overwrite one).
        #[arg(long)]
        new_ssn_key: bool,
    },
    /// Seals again with each tenant's own PII key the SSNs sealed with the deployment's keys
    /// before tenants had keys of their own (once, after upgrading): until then a whole-SSN
    /// search misses them and a purge cannot shred them.
    Reseal {
        /// Tenant slug or id; every tenant when omitted.
        tenant: Option<String>,
    },
    /// Exports a suspended tenant then purges it (what the Tenant operator's offboarding Job
    /// runs); run again, it carries on where it stopped.
    Offboard {
        /// Tenant slug or id.
        tenant: String,
        /// A folder, or s3://bucket/prefix (configured by the AWS_* variables).
        #[arg(long)]
        to: String,
        /// The tenant's key for its SSNs (32 bytes in base64).
        #[arg(long)]
        ssn_key_file: std::path::PathBuf,
    },
    /// Deletes every row of a suspended, exported tenant and its attachments, in batches;
    /// run it again to resume one cut short. Prints what it deleted per table.
    Purge {
        /// Tenant slug or id.
        tenant: String,
        /// Rows deleted per transaction.
        #[arg(long, default_value_t = 5000)]
        batch: i64,
        /// Seconds between marking the tenant purged and the first delete.
        #[arg(long, default_value_t = 5)]
        grace_seconds: u64,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config {
        command: ConfigCommand::Reference,
    } = cli.command
    {
        print!("{}", caseway_platform::config::reference());
        return Ok(());
    }
    if let Command::Operator {
        command: OperatorCommand::Crd,
    } = cli.command
    {
        print!("{}", caseway_operator::crd::crd_yaml());
        return Ok(());
    }
    let config = Config::load()?;
    match cli.command {
        Command::Serve { target } => {
            let targets = crate::parse_targets(&target)?;
            let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
            let _telemetry = telemetry::init(&telemetry::service_name(&names), &config)?;
            serve_until_signal(config, &targets).await
        }
        Command::Migrate => {
            db::migrate(&config.migration_database_url, &crate::migrators()).await?;
            println!("migrations applied");
            if let Some(file) = &config.app_role_password_file {
                let password = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let password = password.trim_end_matches(['\r', '\n']);
                if password.len() < MIN_ROLE_PASSWORD {
                    bail!(
                        "{} holds a password of {} characters; give the services' role at least {MIN_ROLE_PASSWORD}",
                        file.display(),
                        password.len()
                    );
                }
                db::set_app_role_password(&config.migration_database_url, password).await?;
                println!("password of caseway_app set");
            }
            Ok(())
        }
        Command::Dev => dev(config).await,
        Command::Token { command } => token(config, command).await,
        Command::Tenant { command } => tenant(config, command).await,
        Command::Events { command } => events(config, command).await,
        Command::Eligibility { command } => eligibility(config, command).await,
        Command::Operator { command } => operator(config, command).await,
        Command::Config { .. } => Ok(()),
        Command::Probe { path } => probe(config.metrics_listen, &path).await,
    }
}

/// The shortest password `caseway migrate` gives the services' role.
const MIN_ROLE_PASSWORD: usize = 16;

/// How long a probe waits for the node.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// GETs `path` from the metrics port at `listen` (a wildcard address means this machine's own)
/// and succeeds on 200.
async fn probe(mut listen: std::net::SocketAddr, path: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if listen.ip().is_unspecified() {
        let own: std::net::IpAddr = if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        listen.set_ip(own);
    }
    let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut stream = tokio::net::TcpStream::connect(listen).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(answer)
    })
    .await
    .with_context(|| format!("{listen} did not answer within {PROBE_TIMEOUT:?}"))?
    .with_context(|| format!("asking {listen} for {path}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => bail!("{path} on {listen} answered {status:?}"),
    }
}

/// Who the rebuild's token names.
const REBUILD_ACTOR: &str = "caseway/eligibility-rebuild";

async fn eligibility(config: Config, command: EligibilityCommand) -> anyhow::Result<()> {
    let EligibilityCommand::Rebuild { tenant } = command;
    let tenant = find_tenant(&tenancy(&config)?, &tenant).await?;
    let issuer = TokenIssuer::from_file(
        &config.jwt_private_key_file,
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    let token = issuer.issue_with_permissions(
        REBUILD_ACTOR,
        Some(tenant.id),
        &[Role::TenantAdmin],
        &[],
        &[],
        chrono::Duration::hours(1),
    )?;
    let peers = caseway_platform::tls::Peers::new(&config)?;
    let own = caseway_platform::tls::own_endpoint(&config, config.grpc_listen.port());
    let channel = |endpoint: &Option<String>| peers.channel(endpoint.as_deref().unwrap_or(&own));
    let sources = caseway_eligibility::rebuild::Sources {
        catalog: channel(&config.catalog_endpoint)?,
        clients: channel(&config.clients_endpoint)?,
        records: channel(&config.records_endpoint)?,
        token,
    };
    let db = Db::connect_lazy(&config.database_url, 2)?;
    let service = caseway_eligibility::service::Eligibility::new(db);
    let rebuilt = caseway_eligibility::rebuild::rebuild(&service, tenant.id, &sources).await?;
    println!(
        "tenant {}: {} facts read for {} clients, {} newer than what the events had left",
        tenant.slug, rebuilt.read, rebuilt.clients, rebuilt.written
    );
    Ok(())
}

async fn events(config: Config, command: EventsCommand) -> anyhow::Result<()> {
    let bus = caseway_platform::bus::Bus::new(&config.amqp_url, &config.events_exchange);
    match command {
        EventsCommand::Parked { consumer } => {
            let parked = bus.parked(&consumer).await?;
            for p in &parked {
                match &p.envelope {
                    Some(e) => println!(
                        "{}\t{}\t{}\ttenant {}\tsubject {}\t{} x{}",
                        e.id,
                        e.event_type,
                        e.time.to_rfc3339(),
                        e.tenant_id,
                        e.subject,
                        p.reason,
                        p.count
                    ),
                    None => println!("(not an event)\t{} x{}", p.reason, p.count),
                }
            }
            println!("{} parked for {consumer}", parked.len());
        }
        EventsCommand::Replay { consumer, ids } => {
            let replayed = bus.replay(&consumer, &ids).await?;
            println!("{replayed} put back on {}", bus.queue_name(&consumer));
        }
    }
    Ok(())
}

async fn operator(config: Config, command: OperatorCommand) -> anyhow::Result<()> {
    let OperatorCommand::Run {
        tenancy_endpoint,
        tenancy_ca_file,
        token_file,
        namespace,
        identity,
        lease_seconds,
        offboarding_job_template,
    } = command
    else {
        return Ok(());
    };
    let _telemetry = telemetry::init(caseway_operator::NAME, &config)?;
    let identity = identity.unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("{}-{}", caseway_operator::NAME, uuid::Uuid::new_v4()))
    });
    let operator = caseway_operator::Config {
        tenancy_endpoint,
        tenancy_ca_file,
        token: caseway_operator::tenancy::Token::File(token_file),
        namespace,
        identity,
        lease_duration: Duration::from_secs(lease_seconds.max(3)),
        offboarding_job_template,
    };
    caseway_operator::run(operator, shutdown_on_signal()).await
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing the SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        cancel.cancel();
    });
    token
}

/// The gRPC and metrics listeners of the configuration.
async fn listen(config: &Config) -> anyhow::Result<(TcpListener, TcpListener)> {
    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("binding {}", config.grpc_listen))?;
    let metrics = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding {}", config.metrics_listen))?;
    Ok((grpc, metrics))
}

async fn serve_until_signal(config: Config, targets: &[crate::Target]) -> anyhow::Result<()> {
    let (grpc, metrics) = listen(&config).await?;
    let node = crate::start(config, targets, grpc, metrics, shutdown_on_signal()).await?;
    node.wait().await
}

fn tenancy(config: &Config) -> anyhow::Result<Tenancy> {
    let db = Db::connect_lazy(&config.database_url, 2)?;
    let statuses = Arc::new(TenantStatusCache::new(db.clone(), config.tenant_status_ttl));
    Ok(Tenancy::new(db, statuses))
}

async fn find_tenant(tenancy: &Tenancy, key: &str) -> anyhow::Result<Tenant> {
    let found = match key.parse::<TenantId>() {
        Ok(id) => tenancy.get_tenant(id).await,
        Err(_) => tenancy.tenant_by_slug(key).await,
    };
    found.map_err(|e| anyhow::anyhow!("{e}"))
}

const CLI_ACTOR: &str = "caseway-cli";

/// Who the audit trail says changed a tenant from the command line.
fn cli_actor() -> Principal {
    Principal {
        user_id: CLI_ACTOR.into(),
        tenant_id: None,
        organization_ids: vec![],
        roles: vec![],
        permissions: vec![],
        service: None,
    }
}

async fn tenant(config: Config, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Export {
            tenant,
            to,
            ssn_key_file,
            new_ssn_key,
        } => {
            if new_ssn_key {
                caseway_platform::secrets::write_new(
                    &ssn_key_file,
                    caseway_offboarding::ExportKey::generate().as_bytes(),
                )?;
            }
            let exported = crate::offboard::export(&config, &tenant, &to, &ssn_key_file).await?;
            let manifest = &exported.manifest;
            println!(
                "exported {} rows of {} tables and {} attachments of {} to {to}; {} SSNs sealed \
                 with the key {}; manifest SHA-256 {}",
                manifest.rows(),
                manifest.tables.len(),
                manifest.attachments.len(),
                manifest.tenant.slug,
                manifest.ssn.sealed,
                manifest.ssn.key_fingerprint,
                exported.manifest_sha256
            );
            return Ok(());
        }
        TenantCommand::Offboard {
            tenant,
            to,
            ssn_key_file,
        } => {
            let report = crate::offboard::offboard(&config, &tenant, &to, &ssn_key_file).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        TenantCommand::Reseal { tenant } => {
            for (slug, n) in crate::offboard::reseal(&config, tenant.as_deref()).await? {
                println!("{slug}\t{n} SSNs sealed with the tenant's key");
            }
            return Ok(());
        }
        TenantCommand::Purge {
            tenant,
            batch,
            grace_seconds,
        } => {
            let options = caseway_offboarding::PurgeOptions {
                batch,
                grace: Duration::from_secs(grace_seconds),
                settle: config.tenant_status_ttl,
            };
            let report = crate::offboard::purge(&config, &tenant, &options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        _ => {}
    }
    let tenancy = tenancy(&config)?;
    match command {
        TenantCommand::Create { slug, name } => {
            let tenant = create_tenant(&tenancy, &slug, &name).await?;
            println!("{}\t{}\t{}", tenant.id, tenant.slug, tenant.status.as_str());
        }
        TenantCommand::List => {
            let mut after = None;
            loop {
                let page = tenancy
                    .list_tenants(None, None, after.clone(), 500)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for t in &page {
                    println!(
                        "{}\t{}\t{}\t{}",
                        t.id,
                        t.slug,
                        t.status.as_str(),
                        t.display_name
                    );
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.slug.clone()),
                    _ => break,
                }
            }
        }
        TenantCommand::Suspend { tenant, reason } => {
            let found = find_tenant(&tenancy, &tenant).await?;
            let change = convert::suspend_tenant_request(&tenancy_pb::SuspendTenantRequest {
                id: found.id.to_string(),
                reason,
                ..Default::default()
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = tenancy
                .set_status(&cli_actor(), change)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}\t{}\t{}", t.id, t.slug, t.status.as_str());
        }
        TenantCommand::Export { .. }
        | TenantCommand::Offboard { .. }
        | TenantCommand::Purge { .. }
        | TenantCommand::Reseal { .. } => {}
        TenantCommand::Resume { tenant } => {
            let found = find_tenant(&tenancy, &tenant).await?;
            let change = convert::resume_tenant_request(&tenancy_pb::ResumeTenantRequest {
                id: found.id.to_string(),
                ..Default::default()
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = tenancy
                .set_status(&cli_actor(), change)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}\t{}\t{}", t.id, t.slug, t.status.as_str());
        }
    }
    Ok(())
}

pub async fn create_tenant(tenancy: &Tenancy, slug: &str, name: &str) -> anyhow::Result<Tenant> {
    // Checked as the API checks it; no request id, so not retryable.
    let create = convert::create_tenant_request(&tenancy_pb::CreateTenantRequest {
        tenant: Some(tenancy_pb::Tenant {
            slug: slug.into(),
            display_name: name.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tenancy
        .create_tenant(&cli_actor(), create)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn token(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let (tenant, roles, orgs, perms, user, hours) = match command {
        TokenCommand::Issue {
            tenant,
            roles,
            orgs,
            perms,
            user,
            hours,
        } => (tenant, roles, orgs, perms, user, hours),
        TokenCommand::Revoke {
            id,
            user,
            tenant,
            before,
        } => return revoke(config, id, user, tenant, before).await,
    };
    let max_hours = config.jwt_max_lifetime.as_secs() as i64 / 3600;
    anyhow::ensure!(
        hours <= max_hours,
        "a token may live at most {max_hours} hours here (CASEWAY_JWT_MAX_LIFETIME_SECONDS)"
    );
    let issuer = TokenIssuer::from_file(
        &config.jwt_private_key_file,
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    let roles = roles
        .iter()
        .map(|r| Role::parse(r).with_context(|| format!("unknown role {r}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (tenant_id, organization_ids) = match tenant {
        None => (None, Vec::new()),
        Some(key) => {
            let tenancy = tenancy(&config)?;
            let found = find_tenant(&tenancy, &key).await?;
            let mut ids = Vec::new();
            for org in &orgs {
                match Uuid::parse_str(org) {
                    Ok(id) => ids.push(id),
                    Err(_) => {
                        let all = tenancy
                            .list_organizations(found.id, None, 500)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let matched = all
                            .iter()
                            .find(|o| &o.code == org)
                            .with_context(|| format!("no organization with code {org}"))?;
                        ids.push(matched.id);
                    }
                }
            }
            (Some(found.id), ids)
        }
    };
    let permissions: Vec<&str> = perms.iter().map(String::as_str).collect();
    let token = issuer.issue_with_permissions(
        &user,
        tenant_id,
        &roles,
        &organization_ids,
        &permissions,
        chrono::Duration::hours(hours),
    )?;
    println!("{token}");
    Ok(())
}

async fn revoke(
    config: Config,
    id: Option<String>,
    user: Option<String>,
    tenant: Option<String>,
    before: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(caseway_platform::metrics::Metrics::new());
    let redis = caseway_platform::redis::Redis::new(
        &config.redis_url,
        config.redis_ca_file.as_deref(),
        metrics,
    )?;
    let max_lifetime = config.jwt_max_lifetime.as_secs() as i64;
    match (id, user) {
        (Some(id), _) => {
            // A token lives at most the maximum lifetime, so its entry may go after that.
            let expires = chrono::Utc::now().timestamp() + max_lifetime;
            revocation::revoke_token(&redis, &id, expires).await?;
            println!("revoked token {id}");
        }
        (None, Some(user)) => {
            let tenant_id = match tenant {
                Some(key) => Some(find_tenant(&tenancy(&config)?, &key).await?.id),
                None => None,
            };
            let before = before.unwrap_or_else(chrono::Utc::now);
            revocation::revoke_user(&redis, tenant_id, &user, before.timestamp(), max_lifetime)
                .await?;
            println!(
                "revoked the tokens of {user} issued until {}",
                before.to_rfc3339()
            );
        }
        (None, None) => anyhow::bail!("give --id or --user"),
    }
    Ok(())
}

async fn dev(mut config: Config) -> anyhow::Result<()> {
    let _telemetry = telemetry::init("caseway", &config)?;
    ensure_dev_secrets(&mut config)?;
    db::migrate(&config.migration_database_url, &crate::migrators()).await?;
    let (grpc, metrics) = listen(&config).await?;
    let node = crate::start(
        config.clone(),
        &crate::Target::ALL,
        grpc,
        metrics,
        shutdown_on_signal(),
    )
    .await?;
    let issuer = TokenIssuer::from_file(
        &config.jwt_private_key_file,
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    // The seed's catalog must reach the eligibility service's facts: wait until its queue is
    // bound (at once when it outlived an earlier run).
    let bus = caseway_platform::bus::Bus::new(&config.amqp_url, &config.events_exchange);
    for _ in 0..100 {
        if bus.is_bound(caseway_eligibility::events::CONSUMER) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let channel = tonic::transport::Channel::from_shared(format!(
        "http://127.0.0.1:{}",
        node.grpc_addr.port()
    ))?
    .connect()
    .await
    .context("connecting to the demo node")?;
    let demo = caseway_fixtures::demo::seed(channel, &issuer)
        .await
        .context("seeding the demo tenant")?;
    print_banner(&config, node.grpc_addr, &demo);
    node.wait().await
}

/// The secrets of a local stack, written under the data folder unless they are there (owner
/// only): the user token key pair, the service key, the PII keys and the page-token secret.
pub fn ensure_dev_secrets(config: &mut Config) -> anyhow::Result<()> {
    ensure_key_pair(&config.jwt_private_key_file, &config.jwt_public_key_file)?;
    ensure_private_key(&config.service_key_file)?;
    caseway_clients::pii::ensure_key_file(&config.pii_keys_file)?;
    let page_secret = config
        .page_token_secret_file
        .get_or_insert_with(|| config.data_dir.join("page-token-secret"));
    caseway_platform::secrets::ensure_random(page_secret)?;
    Ok(())
}

fn print_banner(config: &Config, addr: std::net::SocketAddr, demo: &caseway_fixtures::demo::Demo) {
    let host = format!("127.0.0.1:{}", addr.port());
    println!();
    println!(
        "Caseway is serving every target on {host} (metrics on {}).",
        config.metrics_listen
    );
    println!("Demo tenant: {} ({})", demo.tenant_slug, demo.tenant_id);
    println!("Token (tenant_admin + caseworker in both organizations, 12 h):");
    println!("CASEWAY_TOKEN={}", demo.token);
    println!();
    println!("Try, with grpcurl (reflection, no proto files needed):");
    println!("  grpcurl -plaintext {host} list");
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" {host} caseway.catalog.v1.CatalogService/ListServices"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" -d '{{\"id\": \"{}\"}}' {host} caseway.catalog.v1.CatalogService/GetService",
        demo.service_id
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" -d '{{\"name\": \"jhon smith\"}}' {host} caseway.clients.v1.ClientsService/SearchClients"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" -d '{{\"client_id\": \"{}\"}}' {host} caseway.clients.v1.AssessmentsService/ListLatestAssessments",
        demo.client_id
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" -d '{{\"start_date\": {{\"year\": 2026, \"month\": 1, \"day\": 1}}, \"end_date\": {{\"year\": 2026, \"month\": 12, \"day\": 31}}, \"group_by\": [\"TOTALS_GROUPING_SERVICE\"]}}' {host} caseway.records.v1.RecordsService/GetServiceTotals"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" -d '{{\"authorization_id\": \"{}\"}}' {host} caseway.authorizations.v1.AuthorizationsService/GetAuthorizationUtilization",
        demo.authorization_id
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" -d '{{\"client_id\": \"{}\"}}' {host} caseway.eligibility.v1.EligibilityService/CheckEligibility",
        demo.client_id
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" {host} caseway.ticketing.v1.TicketingService/ListTickets"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $CASEWAY_TOKEN\" {host} caseway.ticketing.v1.TicketingService/WatchTickets   # every change as it happens; Ctrl-C ends it"
    );
    println!(
        "  grpcurl -plaintext -d '{{\"service\": \"caseway.catalog.v1.CatalogService\"}}' {host} grpc.health.v1.Health/Check"
    );
    println!("ready");
}
