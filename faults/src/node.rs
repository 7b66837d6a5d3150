//! Nodes as their own processes, so that a scenario can stop one with SIGTERM or kill it with
//! SIGKILL as Kubernetes does a pod, and a client over several nodes that sees them as a
//! gateway behind a Service does.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

use caseway_platform::Config;

/// `caseway serve` in a process of its own (the suite's `fault-node` binary is the Caseway
/// binary), configured as `config` says, its JSON log kept.
pub struct ProcessNode {
    child: Child,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl ProcessNode {
    /// Starts `program serve --target <targets>` and waits until it logs that it serves.
    pub async fn start(program: &Path, config: &Config, targets: &str) -> ProcessNode {
        let mut command = Command::new(program);
        command
            .args(["serve", "--target", targets])
            .env_clear()
            .envs(environment(config))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the node starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        // What it writes to its standard error (a panic's message) goes to the log as well.
        let mut errors = BufReader::new(child.stderr.take().expect("its errors")).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("its output")).lines();
        let serving = async {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if entry["fields"]["message"] == "serving" {
                    let field = |name: &str| entry["fields"][name].as_str()?.parse().ok();
                    return field("grpc_addr").zip(field("metrics_addr"));
                }
            }
            None
        };
        let (addr, metrics_addr) = tokio::time::timeout(Duration::from_secs(60), serving)
            .await
            .expect("the node serves within a minute")
            .unwrap_or_else(|| panic!("the node stopped: {:?}", log.lock().unwrap()));
        // Keep reading, so the node never blocks on a full pipe.
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        ProcessNode {
            child,
            addr,
            metrics_addr,
            log,
        }
    }

    /// Sends the signal `name` (`TERM`, `KILL`) to the node.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the node runs");
        let sent = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{name} sent to {pid}");
    }

    /// Waits for the node to exit, at most `within`.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the node did not exit within {within:?}"))
            .expect("its exit status")
    }

    /// The node's resident memory now and at its peak, in MiB.
    pub fn memory_mib(&self) -> (u64, u64) {
        let pid = self.child.id().expect("the node runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let read = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                / 1024
        };
        (read("VmRSS:"), read("VmHWM:"))
    }

    /// Whether the node logged a line whose message is `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.log().iter().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|entry| entry["fields"]["message"] == message)
        })
    }

    /// Everything the node logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The variables that give a `caseway serve` process what `config` holds, on ephemeral
/// ports, logging JSON.
pub fn environment(config: &Config) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("CASEWAY_GRPC_LISTEN", "127.0.0.1:0".to_string()),
        ("CASEWAY_METRICS_LISTEN", "127.0.0.1:0".to_string()),
        ("CASEWAY_LOG_FORMAT", "json".to_string()),
        ("CASEWAY_DATABASE_URL", config.database_url.clone()),
        (
            "CASEWAY_DATABASE_MAX_CONNECTIONS",
            config.database_max_connections.to_string(),
        ),
        ("CASEWAY_REDIS_URL", config.redis_url.clone()),
        ("CASEWAY_AMQP_URL", config.amqp_url.clone()),
        ("CASEWAY_EVENTS_EXCHANGE", config.events_exchange.clone()),
        (
            "CASEWAY_TENANT_RATE_LIMIT",
            config.tenant_rate_limit.to_string(),
        ),
        ("CASEWAY_DATA_DIR", config.data_dir.display().to_string()),
        (
            "CASEWAY_JWT_PUBLIC_KEY_FILE",
            config.jwt_public_key_file.display().to_string(),
        ),
        (
            "CASEWAY_PII_KEYS_FILE",
            config.pii_keys_file.display().to_string(),
        ),
        (
            "CASEWAY_SERVICE_KEY_FILE",
            config.service_key_file.display().to_string(),
        ),
        (
            "CASEWAY_OUTBOX_POLL_MILLIS",
            config.outbox_poll_interval.as_millis().to_string(),
        ),
        (
            "CASEWAY_SHUTDOWN_DELAY_MILLIS",
            config.shutdown_delay.as_millis().to_string(),
        ),
        (
            "CASEWAY_SHUTDOWN_GRACE_SECONDS",
            config.shutdown_grace.as_secs().to_string(),
        ),
        (
            "CASEWAY_AUTHORIZATIONS_SWEEP_MILLIS",
            config.authorizations_sweep_interval.as_millis().to_string(),
        ),
        (
            "CASEWAY_AUTHORIZATIONS_UNSETTLED_AFTER_SECONDS",
            config.authorizations_unsettled_after.as_secs().to_string(),
        ),
    ];
    if let Some(file) = &config.page_token_secret_file {
        vars.push(("CASEWAY_PAGE_TOKEN_SECRET_FILE", file.display().to_string()));
    }
    if let Ok(path) = std::env::var("PATH") {
        vars.push(("PATH", path));
    }
    vars
}

/// Whether the node whose metrics port is `addr` answers its readiness with 200 within a
/// second; a node that does not answer at all is not ready.
pub async fn ready(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        Some(response.starts_with("HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A client over several nodes as a gateway behind a Kubernetes Service sees them: calls are
/// balanced over the nodes, and a node leaves the set as soon as its readiness fails (looked
/// at every 100 ms), as it leaves the Service's endpoints. A node that left does not come
/// back: a stopped pod is replaced by a new one, with an address of its own.
pub struct Balanced {
    pub channel: Channel,
    /// Nodes (by gRPC address) taken out of the set, in the order they left.
    left: Arc<Mutex<Vec<SocketAddr>>>,
    stop: CancellationToken,
}

impl Balanced {
    /// Nodes as (gRPC address, metrics address).
    pub async fn over(nodes: &[(SocketAddr, SocketAddr)]) -> Balanced {
        let (channel, changes) = Channel::balance_channel::<SocketAddr>(16);
        for &(grpc, _) in nodes {
            let endpoint = Endpoint::from_shared(format!("http://{grpc}"))
                .expect("an address")
                .connect_timeout(Duration::from_secs(1));
            changes
                .send(Change::Insert(grpc, endpoint))
                .await
                .expect("the balancer listens");
        }
        let left = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (watched, gone, stopped) = (nodes.to_vec(), left.clone(), stop.clone());
        tokio::spawn(async move {
            let mut serving = watched;
            while !stopped.is_cancelled() {
                let mut still = Vec::new();
                for (grpc, metrics) in serving {
                    if ready(metrics).await {
                        still.push((grpc, metrics));
                    } else {
                        let _ = changes.send(Change::Remove(grpc)).await;
                        gone.lock().unwrap_or_else(|e| e.into_inner()).push(grpc);
                    }
                }
                serving = still;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.cancelled() => {}
                }
            }
        });
        Balanced {
            channel,
            left,
            stop,
        }
    }

    /// The nodes taken out of the set so far.
    pub fn left(&self) -> Vec<SocketAddr> {
        self.left.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Balanced {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
