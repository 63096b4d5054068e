//! The HTTP API: Confluent's Schema Registry REST routes, translated into [`Store`] calls.
//!
//! Paths, JSON field names, status codes and error codes follow Confluent so that its
//! clients (here `schema_registry_converter`) work unchanged. Request bodies are read as
//! raw bytes and parsed here, so any content type Confluent accepts
//! (`application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
//! `application/json`, `application/octet-stream`, none) works; responses are always
//! `application/vnd.schemaregistry.v1+json`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{self, Credentials};
use crate::compatibility::CompatibilityLevel;
use crate::error::RegistryError;
use crate::schema::{SchemaReference, SchemaSubmission, AVRO};
use crate::store::{Store, SubjectSchema, VersionSpec};

/// The media type Confluent's registry answers with.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Result type of handlers: errors render as Confluent error JSON.
type ApiResult = Result<Response, RegistryError>;

/// Shared state of all handlers: the one store, behind a mutex.
///
/// A plain (blocking) mutex is enough: every operation is short, never awaits while
/// holding it, and serialising writers keeps id and version allocation trivially correct.
#[derive(Clone)]
struct AppState {
    /// The registry data.
    store: Arc<Mutex<Store>>,
}

impl AppState {
    /// Runs `f` with exclusive access to the store. A poisoned lock is recovered: the
    /// store only swaps in fully built states, so a panic cannot leave it half-changed.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut store)
    }
}

/// Builds the router serving `store`; only `writer` may change it (see [`auth`]).
pub fn router(store: Store, writer: Option<Credentials>) -> Router {
    let state = AppState {
        store: Arc::new(Mutex::new(store)),
    };
    // Lookups and compatibility tests are POSTs, but change nothing: they are reads.
    let reads = Router::new()
        .route("/", get(root))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup_schema))
        .route("/subjects/{subject}/versions", get(list_versions))
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(get_referenced_by),
        )
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(get_schema_by_id))
        .route("/schemas/ids/{id}/schema", get(get_raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(get_id_versions))
        .route("/schemas/ids/{id}/subjects", get(get_id_subjects))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(test_compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(test_compatibility_version),
        )
        .route("/config", get(get_global_config))
        .route("/config/{subject}", get(get_subject_config))
        .route("/mode", get(get_mode));
    let writes = Router::new()
        .route("/subjects/{subject}", delete(delete_subject))
        .route("/subjects/{subject}/versions", post(register_schema))
        .route(
            "/subjects/{subject}/versions/{version}",
            delete(delete_version),
        )
        .route("/config", put(put_global_config))
        .route(
            "/config/{subject}",
            put(put_subject_config).delete(delete_subject_config),
        )
        .route_layer(middleware::from_fn_with_state(writer, auth::require_writer));
    reads
        .merge(writes)
        .fallback(|| async { RegistryError::NotFound })
        .method_not_allowed_fallback(|| async { RegistryError::MethodNotAllowed })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serialises `body` as the response with Confluent's content type.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            bytes,
        )
            .into_response(),
        // Our response types are plain structs; this cannot happen.
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// A 200 response with `body`.
fn ok<T: Serialize>(body: &T) -> ApiResult {
    Ok(json_response(StatusCode::OK, body))
}

/// Logs each request at debug level (method, path, status, duration).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        %uri,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Parses a JSON body; an empty body counts as `{}` (so missing fields get their 422).
fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, RegistryError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|error| RegistryError::BadRequest(format!("Invalid JSON request body: {error}")))
}

/// Whether boolean query parameter `name` is `true` (Confluent's `deleted`, `permanent`, ...).
fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// Parses a schema id path segment; a non-number is Jersey's plain 404.
fn parse_id(text: &str) -> Result<u32, RegistryError> {
    text.parse().map_err(|_| RegistryError::NotFound)
}

// ----- response bodies -----------------------------------------------------------------

/// A subject version, as `GET /subjects/{s}/versions/{v}` and lookups return it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubjectVersionBody {
    /// The subject.
    subject: String,
    /// The version within the subject.
    version: u32,
    /// The global schema id.
    id: u32,
    /// Omitted: Confluent leaves it out for AVRO, the only type here.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_type: Option<String>,
    /// Omitted when empty, as in Confluent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<SchemaReference>,
    /// The schema text.
    schema: String,
}

impl From<SubjectSchema> for SubjectVersionBody {
    fn from(found: SubjectSchema) -> Self {
        Self {
            subject: found.subject,
            version: found.version,
            id: found.id,
            schema_type: None,
            references: found.references,
            schema: found.schema,
        }
    }
}

/// The answer to a registration: the global id.
#[derive(Debug, Serialize)]
struct IdBody {
    /// The schema's global id.
    id: u32,
}

/// `GET /schemas/ids/{id}`: the schema (and references), without subject or version.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaByIdBody {
    /// Omitted for AVRO, as in Confluent.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_type: Option<String>,
    /// Omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<SchemaReference>,
    /// The schema text.
    schema: String,
}

/// One (subject, version) pair using a schema id.
#[derive(Debug, Serialize)]
struct SubjectVersionPair {
    /// The subject.
    subject: String,
    /// The version within it.
    version: u32,
}

/// The result of a compatibility test.
#[derive(Debug, Serialize)]
struct CompatibilityBody {
    /// Whether the schema passed.
    is_compatible: bool,
    /// The violations, only with `?verbose=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<String>>,
}

/// `GET /config` answers: Confluent names the field `compatibilityLevel` here.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    /// The level.
    compatibility_level: CompatibilityLevel,
}

/// `PUT /config` request and answer: here the field is `compatibility`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigUpdate {
    /// The requested level as text (validated into a [`CompatibilityLevel`]).
    #[serde(default)]
    compatibility: Option<String>,
}

/// `GET /mode`: always read-write (import mode is not implemented).
#[derive(Debug, Serialize)]
struct ModeBody {
    /// Confluent's mode name.
    mode: &'static str,
}

// ----- handlers ------------------------------------------------------------------------

/// `GET /`: Confluent answers `{}` (used as a health check).
async fn root() -> ApiResult {
    ok(&serde_json::json!({}))
}

/// `GET /subjects[?deleted=true]`.
async fn list_subjects(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let subjects = state.with_store(|store| Ok(store.subjects(flag(&query, "deleted"))))?;
    ok(&subjects)
}

/// `GET /subjects/{subject}/versions[?deleted=true]`.
async fn list_versions(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let versions = state.with_store(|store| store.versions(&subject, flag(&query, "deleted")))?;
    ok(&versions)
}

/// `POST /subjects/{subject}/versions`: register, answering `{id}`.
async fn register_schema(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let submission: SchemaSubmission = parse_body(&body)?;
    let id = state.with_store(|store| store.register(&subject, &submission))?;
    ok(&IdBody { id })
}

/// `GET /subjects/{subject}/versions/{version}[?deleted=true]`.
async fn get_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let found =
        state.with_store(|store| store.get_version(&subject, spec, flag(&query, "deleted")))?;
    ok(&SubjectVersionBody::from(found))
}

/// `GET /subjects/{subject}/versions/{version}/schema`: the bare schema text.
async fn get_version_schema(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let found =
        state.with_store(|store| store.get_version(&subject, spec, flag(&query, "deleted")))?;
    Ok(raw_schema(found.schema))
}

/// `GET /subjects/{subject}/versions/{version}/referencedby`: ids of schemas using it.
async fn get_referenced_by(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let ids = state.with_store(|store| store.referenced_by(&subject, spec))?;
    ok(&ids)
}

/// `DELETE /subjects/{subject}/versions/{version}[?permanent=true]`: answers the version.
async fn delete_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let deleted = state
        .with_store(|store| store.delete_version(&subject, spec, flag(&query, "permanent")))?;
    ok(&deleted)
}

/// `POST /subjects/{subject}[?deleted=true]`: is this schema registered under the subject?
async fn lookup_schema(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let submission: SchemaSubmission = parse_body(&body)?;
    let found =
        state.with_store(|store| store.lookup(&subject, &submission, flag(&query, "deleted")))?;
    ok(&SubjectVersionBody::from(found))
}

/// `DELETE /subjects/{subject}[?permanent=true]`: answers the deleted versions.
async fn delete_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let versions =
        state.with_store(|store| store.delete_subject(&subject, flag(&query, "permanent")))?;
    ok(&versions)
}

/// `GET /schemas/types`: only Avro is implemented, so only Avro is advertised.
async fn schema_types() -> ApiResult {
    ok(&[AVRO])
}

/// `GET /schemas/ids/{id}` (`?deleted=true` is accepted; deleted schemas stay readable).
async fn get_schema_by_id(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let body = state.with_store(|store| {
        let stored = store.schema_by_id(id)?;
        Ok(SchemaByIdBody {
            schema_type: None,
            references: stored.references.clone(),
            schema: stored.schema.clone(),
        })
    })?;
    ok(&body)
}

/// `GET /schemas/ids/{id}/schema`: the bare schema text.
async fn get_raw_schema_by_id(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let schema = state.with_store(|store| Ok(store.schema_by_id(id)?.schema.clone()))?;
    Ok(raw_schema(schema))
}

/// `GET /schemas/ids/{id}/versions[?deleted=true]`: the subject versions using the id.
async fn get_id_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let usages = state.with_store(|store| store.id_usages(id, flag(&query, "deleted")))?;
    let pairs: Vec<SubjectVersionPair> = usages
        .into_iter()
        .map(|(subject, version)| SubjectVersionPair { subject, version })
        .collect();
    ok(&pairs)
}

/// `GET /schemas/ids/{id}/subjects[?deleted=true]`: the subjects using the id.
async fn get_id_subjects(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let usages = state.with_store(|store| store.id_usages(id, flag(&query, "deleted")))?;
    let mut subjects: Vec<String> = usages.into_iter().map(|(subject, _)| subject).collect();
    subjects.dedup();
    ok(&subjects)
}

/// `POST /compatibility/subjects/{subject}/versions[?verbose=true]`: the registration check.
async fn test_compatibility_all(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    test_compatibility(state, subject, None, &query, &body)
}

/// `POST /compatibility/subjects/{subject}/versions/{version}[?verbose=true]`.
async fn test_compatibility_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    test_compatibility(state, subject, Some(spec), &query, &body)
}

/// Shared body of the compatibility handlers. With `verbose`, an invalid schema is reported
/// as an incompatible result with its message instead of a 422, as Confluent does.
fn test_compatibility(
    state: AppState,
    subject: String,
    against: Option<VersionSpec>,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let verbose = flag(query, "verbose");
    let submission: SchemaSubmission = parse_body(body)?;
    let messages =
        match state.with_store(|store| store.test_compatibility(&subject, against, &submission)) {
            Ok(messages) => messages,
            Err(error @ RegistryError::InvalidSchema(_)) if verbose => vec![error.to_string()],
            Err(error) => return Err(error),
        };
    ok(&CompatibilityBody {
        is_compatible: messages.is_empty(),
        messages: verbose.then_some(messages),
    })
}

/// `GET /config`: the global level.
async fn get_global_config(State(state): State<AppState>) -> ApiResult {
    let level = state.with_store(|store| Ok(store.compatibility(None)))?;
    ok(&ConfigBody {
        compatibility_level: level,
    })
}

/// `PUT /config` with `{"compatibility": LEVEL}`.
async fn put_global_config(State(state): State<AppState>, body: Bytes) -> ApiResult {
    let level = parse_level(&body)?;
    state.with_store(|store| store.set_compatibility(None, level))?;
    ok(&ConfigUpdate {
        compatibility: Some(level.to_string()),
    })
}

/// `GET /config/{subject}[?defaultToGlobal=true]`: the subject's own level (40408 when it
/// has none), or the effective one with `defaultToGlobal`.
async fn get_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let level = state.with_store(|store| match store.subject_compatibility(&subject) {
        Some(level) => Ok(level),
        None if flag(&query, "defaultToGlobal") => Ok(store.compatibility(None)),
        None => Err(RegistryError::SubjectCompatibilityNotConfigured(
            subject.clone(),
        )),
    })?;
    ok(&ConfigBody {
        compatibility_level: level,
    })
}

/// `PUT /config/{subject}` with `{"compatibility": LEVEL}`.
async fn put_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&body)?;
    state.with_store(|store| store.set_compatibility(Some(&subject), level))?;
    ok(&ConfigUpdate {
        compatibility: Some(level.to_string()),
    })
}

/// `DELETE /config/{subject}`: drop the subject's level; answers the level it had.
async fn delete_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> ApiResult {
    let previous = state.with_store(|store| store.delete_subject_compatibility(&subject))?;
    ok(&ConfigBody {
        compatibility_level: previous,
    })
}

/// `GET /mode`: always `READWRITE`.
async fn get_mode() -> ApiResult {
    ok(&ModeBody { mode: "READWRITE" })
}

/// Reads `{"compatibility": LEVEL}`; a missing or unknown level is 42203.
fn parse_level(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    let update: ConfigUpdate = parse_body(body)?;
    update
        .compatibility
        .as_deref()
        .and_then(|text| text.parse().ok())
        .ok_or(RegistryError::InvalidCompatibilityLevel)
}

/// A response whose body is a schema text itself.
fn raw_schema(schema: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        schema,
    )
        .into_response()
}
