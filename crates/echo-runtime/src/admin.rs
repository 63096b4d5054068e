//! `echoctl topics apply|describe`: make the cluster match topics/topics.toml, or show how
//! it differs, through Kafka's admin API.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use echo_catalog::Catalogue;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;

use crate::config::EchoConfig;

/// How one topic on the cluster compares with the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Exists with the declared partitions and configs.
    InSync,
    /// Not on the cluster.
    Missing,
    /// Fewer partitions than declared (more cannot be fixed: Kafka never shrinks a topic).
    Partitions { actual: i32, declared: i32 },
    /// Configs that differ: `(name, actual, declared)`.
    Configs(Vec<(String, String, String)>),
}

/// One row of `topics describe`.
#[derive(Debug, Clone)]
pub struct TopicStatus {
    /// Real topic name.
    pub name: String,
    /// Declared partitions.
    pub partitions: i32,
    /// How it compares.
    pub drift: Drift,
}

fn admin(config: &EchoConfig) -> Result<AdminClient<DefaultClientContext>> {
    config
        .kafka
        .client_config()
        .create()
        .context("creating Kafka admin client")
}

/// Compares every catalogue topic with the cluster.
pub async fn describe(config: &EchoConfig, catalogue: &Catalogue) -> Result<Vec<TopicStatus>> {
    let admin = admin(config)?;
    let actual_partitions = partitions(&admin)?;
    let mut rows = Vec::new();
    for spec in &catalogue.topics {
        let name = config.topic(&spec.name);
        let declared = catalogue.partitions_of(spec);
        let drift = match actual_partitions.get(&name) {
            None => Drift::Missing,
            Some(&actual) if actual < declared => Drift::Partitions { actual, declared },
            Some(_) => {
                let resource = ResourceSpecifier::Topic(&name);
                let results = admin
                    .describe_configs([&resource], &AdminOptions::new())
                    .await?;
                let current: HashMap<String, String> = results
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r.entries)
                    .filter_map(|e| e.value.map(|v| (e.name, v)))
                    .collect();
                let differing: Vec<_> = topic_configs(config, catalogue, spec)
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let actual = current.get(k).cloned().unwrap_or_default();
                        (actual != v).then(|| (k.to_string(), actual, v))
                    })
                    .collect();
                if differing.is_empty() {
                    Drift::InSync
                } else {
                    Drift::Configs(differing)
                }
            }
        };
        rows.push(TopicStatus {
            name,
            partitions: declared,
            drift,
        });
    }
    Ok(rows)
}

/// Every topic the cluster's metadata shows, with its partition count.
fn partitions(admin: &AdminClient<DefaultClientContext>) -> Result<HashMap<String, i32>> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .context("fetching cluster metadata")?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Creates missing topics, adds missing partitions and sets drifted configs. Idempotent.
/// Returns the rows as they were before, so the caller can say what changed.
pub async fn apply(config: &EchoConfig, catalogue: &Catalogue) -> Result<Vec<TopicStatus>> {
    let before = describe(config, catalogue).await?;
    let admin = admin(config)?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let specs: HashMap<String, _> = catalogue
        .topics
        .iter()
        .map(|s| (config.topic(&s.name), s))
        .collect();
    for row in &before {
        let spec = specs[&row.name];
        let configs = topic_configs(config, catalogue, spec);
        match &row.drift {
            Drift::InSync => {}
            Drift::Missing => {
                let mut topic = NewTopic::new(
                    &row.name,
                    row.partitions,
                    TopicReplication::Fixed(config.kafka.replication_factor),
                );
                for (k, v) in &configs {
                    topic = topic.set(k, v);
                }
                check(admin.create_topics([&topic], &options).await?, &row.name)?;
            }
            Drift::Partitions { declared, .. } => {
                let parts = NewPartitions::new(&row.name, *declared as usize);
                check(
                    admin.create_partitions([&parts], &options).await?,
                    &row.name,
                )?;
            }
            Drift::Configs(_) => {
                let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&row.name));
                for (k, v) in &configs {
                    alter = alter.set(k, v);
                }
                let results = admin.alter_configs([&alter], &options).await?;
                for r in results {
                    r.map_err(|(_, e)| anyhow::anyhow!("altering {}: {e}", row.name))?;
                }
            }
        }
    }
    // The controller answers a creation before the broker's metadata shows the topic (it is
    // propagated asynchronously): wait until every topic shows, so what runs next (a
    // describe, a processor subscribing) finds them.
    let started = std::time::Instant::now();
    loop {
        let shown = partitions(&admin)?;
        let missing = before
            .iter()
            .filter(|r| !shown.contains_key(&r.name))
            .count();
        if missing == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{missing} topic(s) created but not shown by the cluster's metadata after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(before)
}

/// The catalogue's configs of a topic, plus the durability this deployment asks for.
fn topic_configs(
    config: &EchoConfig,
    catalogue: &Catalogue,
    spec: &echo_catalog::TopicSpec,
) -> Vec<(&'static str, String)> {
    let mut configs = catalogue.configs_of(spec);
    configs.push((
        "min.insync.replicas",
        config.kafka.min_insync_replicas.to_string(),
    ));
    configs
}

fn check(results: Vec<rdkafka::admin::TopicResult>, name: &str) -> Result<()> {
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, e)) => anyhow::bail!("{name}: {e}"),
        }
    }
    Ok(())
}

/// Deletes every topic whose name `doomed` selects (an environment's topics, such as a
/// finished test run's). Returns how many were deleted.
pub async fn delete_where(config: &EchoConfig, doomed: impl Fn(&str) -> bool) -> Result<usize> {
    let admin = admin(config)?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .context("fetching cluster metadata")?;
    let names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| doomed(n))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    for batch in names.chunks(200) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        for result in admin.delete_topics(&refs, &options).await? {
            match result {
                // Deleted meanwhile by someone else (a deletion is asynchronous, and the
                // metadata may still list a topic being deleted): what was wanted.
                Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) | Ok(_) => {}
                Err((name, e)) => anyhow::bail!("deleting {name}: {e}"),
            }
        }
    }
    Ok(names.len())
}
