//! A TCP proxy the test controls, between a node and one of its servers: it forwards while
//! up; `cut` closes every connection through it and refuses new ones (they are accepted and
//! closed at once, as a server that went away looks to a client) until `heal`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
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
        let open = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (accept_down, accept_open, accept_stop) = (down.clone(), open.clone(), stop.clone());
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
                tokio::spawn(forward(client, upstream, closed));
            }
        });
        TcpProxy {
            addr,
            down,
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

    /// Forwards again.
    pub fn heal(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, closed: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = closed.cancelled() => {}
    }
}
