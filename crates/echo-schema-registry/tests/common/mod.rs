//! Shared helpers for the HTTP tests: start a real registry on an ephemeral port, talk
//! JSON to it, and make scratch directories.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use echo_schema_registry::{Config, Credentials, Server};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Confluent's media type, sent on requests like Confluent clients do.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The user allowed to write to test registries.
pub const WRITER: &str = "writer";

/// [`WRITER`]'s password.
pub const PASSWORD: &str = "test-password";

/// A registry running in this test process, stopped on [`TestRegistry::stop`] or drop.
pub struct TestRegistry {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    /// Client reused across requests.
    pub client: reqwest::Client,
    /// Fires the graceful shutdown.
    shutdown: Option<oneshot::Sender<()>>,
    /// The serving task.
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestRegistry {
    /// An in-memory registry with the default (BACKWARD) level.
    pub async fn start() -> Self {
        Self::start_with(test_config()).await
    }

    /// A registry persisted in `data_file`.
    pub async fn start_with_file(data_file: &Path) -> Self {
        Self::start_with(Config {
            data_file: Some(data_file.to_owned()),
            ..test_config()
        })
        .await
    }

    /// A registry with an explicit config (use port 0).
    pub async fn start_with(config: Config) -> Self {
        let server = Server::bind(&config).await.expect("bind registry");
        let address = server.local_addr().expect("local address");
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = signal.await;
        }));
        Self {
            base_url: format!("http://{address}"),
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Shuts down gracefully and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    /// Full URL for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GET `path`, returning status and JSON body (`Null` when empty).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    /// POST `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).body(body.to_string()))
            .await
    }

    /// PUT `body` as JSON to `path`.
    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.url(path)).body(body.to_string()))
            .await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.delete(self.url(path))).await
    }

    /// Registers an Avro schema, asserting success; returns the id.
    pub async fn register(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self
            .post(
                &format!("/subjects/{subject}/versions"),
                &serde_json::json!({ "schema": schema }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "register {subject}: {body}");
        body["id"].as_u64().expect("id in register response")
    }

    /// Sends `request` as [`WRITER`], with Confluent's headers; status and JSON body.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.send_as(request.basic_auth(WRITER, Some(PASSWORD)))
            .await
    }

    /// Sends `request` with only Confluent's headers (credentials are up to the caller).
    pub async fn send_as(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await
            .expect("request to registry");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("response body");
        if !text.is_empty() {
            assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "for {text}");
        }
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON response, got {text}"))
        };
        (status, body)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Listens on any free port, in memory, and admits [`WRITER`].
pub fn test_config() -> Config {
    Config {
        port: 0,
        writer: Some(Credentials::new(WRITER, PASSWORD)),
        ..Config::default()
    }
}

/// A fresh, empty directory under the system temp dir (removed by the caller).
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "echo-sr-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A record schema `echo.test.User` with the given fields JSON.
pub fn user_schema(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"User","namespace":"echo.test","fields":[{fields}]}}"#)
}

/// `User` v1: just an id.
pub fn user_v1() -> String {
    user_schema(r#"{"name":"id","type":"string"}"#)
}

/// `User` v2: adds `age` with a default (backward compatible).
pub fn user_v2() -> String {
    user_schema(r#"{"name":"id","type":"string"},{"name":"age","type":"int","default":0}"#)
}
