//! A TCP proxy the test controls, between a node and one of its servers: it forwards while
//! up; `cut` closes every connection through it and refuses new ones (they are accepted and
//! closed at once, as a server that went away looks to a client) until `heal`; `slow` holds
//! every byte the server sends for a while before the client gets it (a server that answers
//! late), until `heal`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    /// How long the server's bytes are held, in milliseconds (0: not at all).
    lag: Arc<AtomicU64>,
    /// Connections accepted and forwarded so far.
    connections: Arc<AtomicUsize>,
    /// Cancelled to close the connections open now; replaced by a fresh one at each cut.
    open: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl TcpProxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let down = Arc::new(AtomicBool::new(false));
        let lag = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (accept_down, accept_open, accept_stop) = (down.clone(), open.clone(), stop.clone());
        let (accept_lag, accepted) = (lag.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    _ = accept_stop.cancelled() => return,
                };
                if accept_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let closed = accept_open
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(forward(client, upstream, closed, accept_lag.clone()));
            }
        });
        TcpProxy {
            addr,
            down,
            lag,
            connections,
            open,
            stop,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.cancel();
        *open = CancellationToken::new();
    }

    /// Holds what the server sends for `lag` before passing it on, on every connection.
    pub fn slow(&self, lag: Duration) {
        self.lag.store(lag.as_millis() as u64, Ordering::SeqCst);
    }

    /// Forwards again, at once.
    pub fn heal(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.lag.store(0, Ordering::SeqCst);
    }

    /// Connections accepted and forwarded so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    closed: CancellationToken,
    lag: Arc<AtomicU64>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // The server's bytes go through a queue, each chunk stamped with when it may be passed on.
    let (held, mut due) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let read_server = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n) = from_server.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let at =
                tokio::time::Instant::now() + Duration::from_millis(lag.load(Ordering::SeqCst));
            if held.send((at, buffer[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let write_client = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to_client.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let upstream = tokio::io::copy(&mut from_client, &mut to_server);
    tokio::select! {
        _ = async { tokio::join!(read_server, write_client) } => {}
        _ = upstream => {}
        _ = closed.cancelled() => {}
    }
}
