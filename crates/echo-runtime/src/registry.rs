//! `echoctl schemas register|check`: put every `.avsc` of avro/ under its subjects in the
//! Schema Registry (TopicRecordNameStrategy: `<topic>-<record full name>`), refusing a change
//! the registry finds incompatible.

use anyhow::{bail, Context, Result};
use std::path::Path;

use echo_catalog::record::RecordInfo;
use echo_catalog::Catalogue;
use echo_catalog::{avsc, events};
use serde_json::{json, Value};

use crate::config::{EchoConfig, RegistryConfig};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// One subject and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectOutcome {
    /// `<topic>-<record name>`.
    pub subject: String,
    /// What the registry said.
    pub status: SubjectStatus,
}

/// The state of one subject against the local schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectStatus {
    /// Registered (or already there) under this schema id.
    Registered(i64),
    /// `check` only: the latest version already is this schema.
    UpToDate,
    /// `check` only: would be registered as a new, compatible version.
    WouldRegister,
    /// The registry refuses it: the reason.
    Incompatible(String),
}

/// Every (subject, schema text) pair the catalogue implies in this environment.
pub fn subjects(config: &EchoConfig, catalogue: &Catalogue) -> Result<Vec<(String, String)>> {
    subjects_with(config, catalogue, |info| Ok(info.avsc.to_string()))
}

/// The same subjects with the schemas of `avro_dir`, laid out as avro/ is
/// (`<context>/<type>.avsc`, shared types in files of their own): a proposed change, checked
/// against the registry before it is built in.
pub fn subjects_in(
    config: &EchoConfig,
    catalogue: &Catalogue,
    avro_dir: &Path,
) -> Result<Vec<(String, String)>> {
    let files = avsc::read_dir(avro_dir)?;
    let shared = avsc::shared_types(&files)?;
    subjects_with(config, catalogue, |info| {
        let file = files
            .iter()
            .find(|f| f.context == info.context && f.stem == info.type_name)
            .with_context(|| {
                format!(
                    "{} has no {}/{}.avsc",
                    avro_dir.display(),
                    info.context,
                    info.type_name
                )
            })?;
        Ok(avsc::self_contained(file, &shared)?)
    })
}

fn subjects_with(
    config: &EchoConfig,
    catalogue: &Catalogue,
    text: impl Fn(&RecordInfo) -> Result<String>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for info in events::all() {
        let topic = catalogue.topic_of(info.type_name)?;
        out.push((
            format!("{}-{}", config.topic(&topic.name), info.record_name),
            text(info)?,
        ));
    }
    Ok(out)
}

/// Registers every subject of the catalogue; with `dry_run` only checks. Fails if any is
/// incompatible.
pub async fn register(
    config: &EchoConfig,
    catalogue: &Catalogue,
    dry_run: bool,
) -> Result<Vec<SubjectOutcome>> {
    register_subjects(config, subjects(config, catalogue)?, dry_run).await
}

/// Registers (or with `dry_run` checks) each (subject, schema text) pair.
pub async fn register_subjects(
    config: &EchoConfig,
    subjects: Vec<(String, String)>,
    dry_run: bool,
) -> Result<Vec<SubjectOutcome>> {
    let client = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for (subject, schema) in subjects {
        let status = if dry_run {
            check_one(&client, &config.registry, &subject, &schema).await?
        } else {
            register_one(&client, &config.registry, &subject, &schema).await?
        };
        outcomes.push(SubjectOutcome { subject, status });
    }
    Ok(outcomes)
}

/// Registers one schema text under one subject, signed in as the registry's writer: the
/// only place echo writes to the registry.
pub async fn register_one(
    client: &reqwest::Client,
    registry: &RegistryConfig,
    subject: &str,
    schema: &str,
) -> Result<SubjectStatus> {
    let response = registry
        .as_writer(client.post(format!("{}/subjects/{subject}/versions", base(registry))))
        .header("Content-Type", CONTENT_TYPE)
        .json(&json!({ "schema": schema }))
        .send()
        .await
        .with_context(|| format!("registering {subject}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status.as_u16() {
        200 => Ok(SubjectStatus::Registered(body["id"].as_i64().unwrap_or(-1))),
        409 => Ok(SubjectStatus::Incompatible(message(&body))),
        401 => bail!(
            "the registry refused user {} for {subject}: set registry.username and registry.password (ECHO_REGISTRY__PASSWORD) to its writer's credentials",
            registry.username
        ),
        _ => bail!(
            "registry answered {status} for {subject}: {}",
            message(&body)
        ),
    }
}

/// Whether `schema` is registered under `subject`, or could be: reads only.
async fn check_one(
    client: &reqwest::Client,
    registry: &RegistryConfig,
    subject: &str,
    schema: &str,
) -> Result<SubjectStatus> {
    let base = base(registry);
    let lookup = client
        .post(format!("{base}/subjects/{subject}"))
        .header("Content-Type", CONTENT_TYPE)
        .json(&json!({ "schema": schema }))
        .send()
        .await
        .with_context(|| format!("looking up {subject}"))?;
    if lookup.status().is_success() {
        return Ok(SubjectStatus::UpToDate);
    }
    let response = client
        .post(format!(
            "{base}/compatibility/subjects/{subject}/versions/latest?verbose=true"
        ))
        .header("Content-Type", CONTENT_TYPE)
        .json(&json!({ "schema": schema }))
        .send()
        .await
        .with_context(|| format!("checking {subject}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match (status.as_u16(), body["is_compatible"].as_bool()) {
        (200, Some(true)) | (404, _) => Ok(SubjectStatus::WouldRegister),
        (200, Some(false)) => Ok(SubjectStatus::Incompatible(body["messages"].to_string())),
        _ => bail!(
            "registry answered {status} for {subject}: {}",
            message(&body)
        ),
    }
}

/// The registry's URL without a trailing slash.
fn base(registry: &RegistryConfig) -> &str {
    registry.url.trim_end_matches('/')
}

/// The registry's error message in `body`, or the body itself.
fn message(body: &Value) -> String {
    body["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}
