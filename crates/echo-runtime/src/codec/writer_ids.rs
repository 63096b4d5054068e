//! The registry ids of the schemas this build writes with. Each is looked up (never
//! registered) by the schema text itself under its subject, so a newer version registered
//! before the code that writes it is deployed changes nothing: a processor writes what its
//! code was built with until the new code is deployed. Only answers are cached; an error is
//! asked again on the next record.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::{EncodeError, SUBJECT_OR_SCHEMA_NOT_FOUND};

/// The ids found so far, by subject.
pub(super) struct WriterIds {
    url: String,
    http: reqwest::Client,
    ids: Mutex<HashMap<String, u32>>,
}

impl WriterIds {
    pub(super) fn new(url: &str, http: reqwest::Client) -> WriterIds {
        WriterIds {
            url: url.to_string(),
            http,
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The id under which `schema` is registered in `subject`.
    pub(super) async fn id_of(&self, subject: &str, schema: &str) -> Result<u32, EncodeError> {
        if let Some(id) = self.ids.lock().expect("writer ids").get(subject) {
            return Ok(*id);
        }
        let unavailable = |e: String| EncodeError::RegistryUnavailable(e);
        let response = self
            .http
            .post(format!("{}/subjects/{subject}", self.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&json!({ "schema": schema }))
            .send()
            .await
            .map_err(|e| unavailable(format!("looking up {subject}: {}", e.without_url())))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["error_code"]
            .as_u64()
            .and_then(|c| u32::try_from(c).ok());
        if status.as_u16() == 404 && code.is_some_and(|c| SUBJECT_OR_SCHEMA_NOT_FOUND.contains(&c))
        {
            return Err(EncodeError::Unregistered(subject.to_string()));
        }
        let id = match (status.is_success(), body["id"].as_u64()) {
            (true, Some(id)) => u32::try_from(id)
                .map_err(|_| unavailable(format!("the registry gave {subject} id {id}")))?,
            _ => {
                return Err(unavailable(format!(
                    "looking up {subject}: HTTP {status}: {}",
                    body["message"].as_str().unwrap_or("no message")
                )))
            }
        };
        self.ids
            .lock()
            .expect("writer ids")
            .insert(subject.to_string(), id);
        Ok(id)
    }
}
