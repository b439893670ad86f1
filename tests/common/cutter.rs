//! A TCP proxy whose connections the test can cut at will, and which can refuse new ones for a
//! while: the network failing under a client, for the resumption tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct Cutter {
    pub addr: String,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Cutter {
    /// Listens on a free loopback port and forwards each connection to `backend`.
    pub async fn start(backend: String) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy listens");
        let addr = listener.local_addr().expect("address").to_string();
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (l, d) = (live.clone(), down.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client); // the network is down: nothing gets through
                    continue;
                }
                let backend = backend.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().unwrap_or_else(|p| p.into_inner()).push(copy.abort_handle());
            }
        });
        Cutter { addr, live, down, task }
    }

    /// Drops every connection through the proxy now (both sockets close).
    pub fn cut(&self) {
        for c in self.live.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            c.abort();
        }
    }

    /// While down, new connections are closed at once.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
