//! A TCP load balancer for the cluster tests: each connection goes to the first backend that
//! accepts it, bytes copied both ways until either side closes. When a node dies its clients'
//! connections close, and their reconnections land on the next node, as behind a real balancer
//! with health checks.

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Listens on a free loopback port; its address and the task (abort it to stop).
pub async fn start(backends: Vec<String>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("balancer listens");
    let addr = listener.local_addr().expect("balancer address").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let backends = backends.clone();
            tokio::spawn(async move {
                for backend in &backends {
                    if let Ok(mut node) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}
