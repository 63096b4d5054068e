//! A pipeline's metrics and health endpoints, as Prometheus and the kubelet reach them.

/// A port no one listens on now, for a pipeline's endpoints.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` on the endpoints at `port`: status and body (0 and nothing when none answers).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    match reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}
