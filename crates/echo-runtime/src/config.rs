//! One configuration for every echo binary: defaults for the local stack, then an optional
//! TOML file, then `ECHO_*` environment variables (`ECHO_KAFKA__BOOTSTRAP_SERVERS=…`).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Endpoints, credentials and tuning for every component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EchoConfig {
    /// Where installed services, models and local data live.
    pub data_dir: PathBuf,
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// The Confluent-compatible Schema Registry.
    pub registry: RegistryConfig,
    /// The S3 server holding uploads and reports.
    pub s3: S3Config,
    /// Batching and dedup settings of the processor runtime.
    pub runtime: RuntimeConfig,
    /// The file this was loaded from, so processor sections come from the same place.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// The file (explicit, or `echo.toml` if present) and then the environment.
fn sources(file: Option<&Path>) -> Figment {
    let figment = match file {
        Some(path) => Figment::from(Toml::file_exact(path)),
        None => Figment::from(Toml::file("echo.toml")),
    };
    figment.merge(Env::prefixed("ECHO_").split("__"))
}

/// How to reach Kafka and how echo names its topics there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KafkaConfig {
    /// `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Prepended to every catalogue topic, so several environments (or test runs) can share
    /// one cluster without seeing each other's records.
    pub topic_prefix: String,
    /// Upper bound of one processor transaction; a crashed producer's open transaction is
    /// aborted by the broker after this long at most.
    pub transaction_timeout_ms: u32,
    /// Replicas of every topic echo creates: 1 on the single local broker, 3 on a cluster
    /// that must survive the loss of a broker. Applies when a topic is created.
    pub replication_factor: i32,
    /// `min.insync.replicas` of every topic echo creates: the replicas that must have a
    /// write before it is acknowledged (2 with 3 replicas: one broker may be down).
    pub min_insync_replicas: i32,
    /// How echo's clients sign in to the brokers, so that the cluster's ACLs can tell each
    /// processor apart; absent on a listener without authentication (the local stack's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslConfig>,
}

/// A SASL identity on the brokers (a Strimzi `KafkaUser` with SCRAM authentication).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaslConfig {
    /// `SCRAM-SHA-512` (what Strimzi's `scram-sha-512` users are), `SCRAM-SHA-256` or `PLAIN`.
    #[serde(default = "SaslConfig::default_mechanism")]
    pub mechanism: String,
    /// The principal: `echo-<processor>` for a processor.
    pub username: String,
    /// Its password; never printed.
    pub password: Secret,
    /// Whether the listener is TLS (`SASL_SSL`); `false` is `SASL_PLAINTEXT`, for a network
    /// that is private already.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA that signed the brokers' certificates (Strimzi's cluster CA);
    /// the system's CAs when absent.
    #[serde(default)]
    pub ca_location: Option<PathBuf>,
}

impl SaslConfig {
    fn default_mechanism() -> String {
        "SCRAM-SHA-512".into()
    }
}

impl KafkaConfig {
    /// The settings every Kafka client of echo starts from: where the brokers are and how to
    /// sign in to them.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        if let Some(sasl) = &self.sasl {
            let protocol = if sasl.tls {
                "SASL_SSL"
            } else {
                "SASL_PLAINTEXT"
            };
            c.set("security.protocol", protocol)
                .set("sasl.mechanism", &sasl.mechanism)
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
            if let Some(ca) = &sasl.ca_location {
                c.set("ssl.ca.location", ca.display().to_string());
            }
        }
        c
    }
}

impl KafkaConfig {
    /// How long one batch may run before it is closed and committed: half the transaction
    /// timeout, so that the record that was running when the budget ran out still ends
    /// within the timeout.
    pub fn batch_budget(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.transaction_timeout_ms) / 2)
    }

    /// The longest a handler's I/O (`observe`: S3, whisper) may take for one input: a
    /// quarter of the transaction timeout; past it the input fails transiently and retries.
    pub fn observe_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.transaction_timeout_ms) / 4)
    }

    /// The longest announced work (`Decider::announce`: a chunk's transcription, the
    /// examination of an upload) may take, I/O and effects together. It runs in a transaction
    /// of its own, opened after the announcement's commit and empty until the work ends, so
    /// no transaction timeout bounds it: half the consumer's poll interval does, so that the
    /// group keeps the member through it.
    pub fn announced_work_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.max_poll_interval_ms() / 2)
    }

    /// The consumer's `max.poll.interval.ms`: a batch (budget, last input, commit) always
    /// ends within the transaction timeout plus a commit's wait, so the group never expels
    /// a member for a batch that is still within its transaction; never below the client's
    /// default (300 s), which also leaves a large restore time to finish between two polls.
    pub fn max_poll_interval_ms(&self) -> u64 {
        (u64::from(self.transaction_timeout_ms) + 30_000).max(300_000)
    }
}

/// Where the Schema Registry is, and who may write to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Base URL of the registry's REST API.
    pub url: String,
    /// The user `echoctl schemas register` signs in as: the registry takes writes only from
    /// it. Processors and clients only read, and send no credentials.
    pub username: String,
    /// Its password; never printed.
    pub password: Secret,
}

impl RegistryConfig {
    /// `request` signed in as the registry's writer (HTTP basic auth).
    pub fn as_writer(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(&self.username, Some(self.password.expose()))
    }
}

/// Where uploads and artifacts are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Config {
    /// Base URL of the S3 endpoint (path-style addressing).
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// Bucket for every object echo writes.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key; never printed.
    pub secret_key: Secret,
}

/// Knobs of the processor loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// Most records handled in one transaction. Each commit waits about 100 ms for the
    /// client's delivery reports (measured: the event-path benchmark), so under load the
    /// batch size sets throughput (100 records: ~1,000/s; 500: ~4,000/s on one broker); a
    /// lone record still goes at once, and the time budget closes a slow batch early.
    pub batch_max_records: usize,
    /// How long after a batch's first record to wait for more before committing a non-full
    /// batch; records already fetched are always taken. 0 (the default) hands each record on
    /// at once: every hop of the flow would otherwise pay the wait.
    pub batch_linger_ms: u64,
    /// How many processed event ids are remembered per key for deduplication: more than the
    /// events of the longest job (a chunk brings about four to its job's keys), since a key
    /// lives as long as its job.
    pub dedup_window: usize,
    /// Multiplies every retry tier's backoff; below 1 in tests and staging, 1 in production.
    pub retry_backoff_scale: f64,
    /// Replays after which a record (or timer) whose transaction keeps failing on its own is
    /// poison and goes to the DLQ, so that no record and no bug can loop forever.
    pub poison_after_failures: u32,
    /// How long a finished key is kept before it is deleted: as long as the topics keep the
    /// records that could replay into it (their retention), so dedup still sees them.
    pub retire_after_ms: i64,
}

/// A string that is never shown in logs or `Debug` output.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    /// The secret itself, for the one place that must sign with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The default data dir: `$ECHO_DATA_DIR`, else `$HOME/.local/share/echo`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("ECHO_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
            Path::new(&home).join(".local/share/echo")
        })
}

impl Default for EchoConfig {
    /// The local stack started by `echoctl dev up`.
    fn default() -> Self {
        let port = |var: &str, default: u16| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        EchoConfig {
            data_dir: default_data_dir(),
            kafka: KafkaConfig {
                bootstrap_servers: format!("127.0.0.1:{}", port("ECHO_KAFKA_PORT", 9092)),
                topic_prefix: String::new(),
                // Above the slowest handler: a chunk transcription takes seconds, validating a
                // long file tens of seconds.
                transaction_timeout_ms: 120_000,
                replication_factor: 1,
                min_insync_replicas: 1,
                sasl: None,
            },
            registry: RegistryConfig {
                url: format!("http://127.0.0.1:{}", port("ECHO_REGISTRY_PORT", 8081)),
                username: std::env::var("ECHO_REGISTRY_USERNAME")
                    .unwrap_or_else(|_| "echo-dev".into()),
                password: Secret(
                    std::env::var("ECHO_REGISTRY_PASSWORD")
                        .unwrap_or_else(|_| "echo-dev-registry-password".into()),
                ),
            },
            s3: S3Config {
                endpoint: format!("http://127.0.0.1:{}", port("ECHO_S3_PORT", 9000)),
                region: "us-east-1".into(),
                bucket: "echo".into(),
                access_key: std::env::var("ECHO_S3_ACCESS_KEY")
                    .unwrap_or_else(|_| "echo-dev-access".into()),
                secret_key: Secret(
                    std::env::var("ECHO_S3_SECRET_KEY")
                        .unwrap_or_else(|_| "echo-dev-secret-key-000000000000".into()),
                ),
            },
            runtime: RuntimeConfig {
                batch_max_records: 500,
                batch_linger_ms: 0,
                dedup_window: 4096,
                retry_backoff_scale: 1.0,
                poison_after_failures: 3,
                retire_after_ms: 7 * 24 * 3600 * 1000,
            },
            file: None,
        }
    }
}

impl EchoConfig {
    /// Defaults, then `file` (or `echo.toml` in the working directory if it exists), then
    /// `ECHO_*` variables with `__` between levels.
    pub fn load(file: Option<&Path>) -> Result<EchoConfig> {
        let mut config: EchoConfig = Figment::from(Serialized::defaults(EchoConfig::default()))
            .merge(sources(file))
            .extract()
            .context("loading echo configuration")?;
        config.file = file.map(Path::to_path_buf);
        Ok(config)
    }

    /// A processor's own section (`[upload]`, `[chunk_worker]`, …) from the same file and
    /// environment (`ECHO_CHUNK_WORKER__THREADS=2`); its defaults where absent.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        let figment = Figment::new().merge(sources(self.file.as_deref()));
        if figment.find_value(name).is_err() {
            return Ok(T::default());
        }
        figment
            .extract_inner(name)
            .with_context(|| format!("loading the [{name}] configuration section"))
    }

    /// The real name of a catalogue topic in this environment.
    pub fn topic(&self, catalogue_name: &str) -> String {
        format!("{}{}", self.kafka.topic_prefix, catalogue_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_printed() {
        let c = EchoConfig::default();
        let shown = format!("{c:?}");
        assert!(!shown.contains(c.s3.secret_key.expose()), "{shown}");
        assert!(!shown.contains(c.registry.password.expose()), "{shown}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's own test API returns its Error by value
    fn a_sasl_identity_comes_from_the_environment_and_signs_every_client_in() {
        figment::Jail::expect_with(|jail| {
            let c = EchoConfig::load(None).unwrap();
            assert!(c.kafka.sasl.is_none());
            assert_eq!(c.kafka.client_config().get("security.protocol"), None);
            jail.set_env("ECHO_KAFKA__SASL__USERNAME", "echo-upload");
            jail.set_env("ECHO_KAFKA__SASL__PASSWORD", "s3cret-from-a-secret");
            let c = EchoConfig::load(None).unwrap();
            let client = c.kafka.client_config();
            assert_eq!(client.get("security.protocol"), Some("SASL_PLAINTEXT"));
            assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
            assert_eq!(client.get("sasl.username"), Some("echo-upload"));
            assert_eq!(client.get("sasl.password"), Some("s3cret-from-a-secret"));
            assert!(!format!("{c:?}").contains("s3cret-from-a-secret"));
            jail.set_env("ECHO_KAFKA__SASL__TLS", "true");
            let c = EchoConfig::load(None).unwrap();
            assert_eq!(
                c.kafka.client_config().get("security.protocol"),
                Some("SASL_SSL")
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's own test API returns its Error by value
    fn env_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ECHO_KAFKA__TOPIC_PREFIX", "t1.");
            jail.set_env("ECHO_KAFKA__REPLICATION_FACTOR", "3");
            let c = EchoConfig::load(None).unwrap();
            assert_eq!(c.topic("echo.upload.events"), "t1.echo.upload.events");
            assert_eq!(
                (c.kafka.replication_factor, c.kafka.min_insync_replicas),
                (3, 1)
            );
            jail.set_env("ECHO_CHUNK_WORKER__THREADS", "3");
            #[derive(Default, Deserialize)]
            struct Worker {
                threads: u32,
                #[serde(default)]
                name: String,
            }
            let w: Worker = c.section("chunk_worker").unwrap();
            assert_eq!((w.threads, w.name.as_str()), (3, ""));
            let absent: Worker = c.section("nothing_here").unwrap();
            assert_eq!(absent.threads, 0);
            Ok(())
        });
    }
}
