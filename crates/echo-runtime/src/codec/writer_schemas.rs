//! The schemas records were written with, by the id in their framing, fetched from the
//! registry once each. Only two answers are kept: the schema, for good, and "no schema has
//! this id" (a record framed with a made-up id), for a minute and for a bounded number of
//! ids, so a flood of made-up ids cannot grow memory and a registry replica that was behind
//! is asked again soon. Anything else (refused connections, timeouts, any other status) is
//! the registry's trouble, never cached: the record is tried again, not dead-lettered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, SrSettings};
use schema_registry_converter::schema_registry_common::SchemaType;

use super::{registry_code, DecodeError, SCHEMA_NOT_FOUND};

/// How long "no schema has this id" is believed.
const MISSING_FOR: Duration = Duration::from_secs(60);

/// How many missing ids are remembered at most; past that the oldest are forgotten.
const MISSING_MAX: usize = 10_000;

/// Schemas by id, and ids the registry said it does not have.
pub(super) struct WriterSchemas {
    settings: SrSettings,
    known: Mutex<HashMap<u32, Arc<Schema>>>,
    missing: Mutex<HashMap<u32, Instant>>,
}

impl WriterSchemas {
    pub(super) fn new(settings: SrSettings) -> WriterSchemas {
        WriterSchemas {
            settings,
            known: Mutex::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
        }
    }

    /// The schema registered under `id`.
    pub(super) async fn get(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        if let Some(schema) = self.known.lock().expect("schemas").get(&id) {
            return Ok(schema.clone());
        }
        let not_found = || {
            DecodeError::Undecodable(format!(
                "the registry has no schema with id {id} (404, error_code {SCHEMA_NOT_FOUND})"
            ))
        };
        if self
            .missing
            .lock()
            .expect("missing ids")
            .get(&id)
            .is_some_and(|at| at.elapsed() < MISSING_FOR)
        {
            return Err(not_found());
        }
        let registered = match get_schema_by_id(id, &self.settings).await {
            Ok(registered) => registered,
            Err(e) if registry_code(&e) == Some(SCHEMA_NOT_FOUND) => {
                self.remember_missing(id);
                return Err(not_found());
            }
            Err(e) => return Err(DecodeError::RegistryUnavailable(e.to_string())),
        };
        if registered.schema_type != SchemaType::Avro || !registered.references.is_empty() {
            return Err(DecodeError::Undecodable(format!(
                "schema {id} is not a self-contained Avro schema"
            )));
        }
        let schema = Schema::parse_str(&registered.schema)
            .map(Arc::new)
            .map_err(|e| DecodeError::Undecodable(format!("schema {id}: {e}")))?;
        self.known
            .lock()
            .expect("schemas")
            .insert(id, schema.clone());
        Ok(schema)
    }

    fn remember_missing(&self, id: u32) {
        let mut missing = self.missing.lock().expect("missing ids");
        missing.retain(|_, at| at.elapsed() < MISSING_FOR);
        if missing.len() >= MISSING_MAX {
            if let Some(oldest) = missing.iter().min_by_key(|(_, at)| **at).map(|(id, _)| *id) {
                missing.remove(&oldest);
            }
        }
        missing.insert(id, Instant::now());
    }
}
