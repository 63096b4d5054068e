//! The registry's data: subjects and their versions, globally numbered schemas, and the
//! compatibility configuration, plus the rules for changing them.
//!
//! Everything here is plain synchronous code with no HTTP in sight, so it can be tested
//! directly; [`crate::api`] only translates requests into these calls. Mutations build the
//! next state on a copy, persist it (when a data file is configured) and only then
//! swap it in, so a failed write leaves the registry exactly as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::compatibility::{self, CompatibilityLevel, ExistingVersion};
use crate::error::RegistryError;
use crate::persist;
use crate::schema::{self, ParsedSchema, SchemaReference, SchemaSubmission};

/// The version of the data-file layout; bumped if `State` changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Shorthand for results of store operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// One schema known to the registry, addressed by its global id.
///
/// Ids are global (not per subject) and an identical schema registered under several
/// subjects shares one id, exactly like Confluent; that is what lets a consumer decode any
/// message from the 4-byte id in its header alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchema {
    /// The schema text exactly as first registered; returned verbatim to clients.
    pub schema: String,
    /// Named types this schema takes from other subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    /// The identity key (see [`schema::identity_key`]) used to find re-registrations.
    pub identity: String,
}

/// One version of a subject: which schema id it points to and whether it is soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectVersion {
    /// The version number, 1-based and never reused within the subject.
    pub version: u32,
    /// The global schema id of this version.
    pub id: u32,
    /// Soft-deleted versions are hidden unless `?deleted=true`, and skipped by
    /// compatibility checks, but keep their number and id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Everything that is persisted: the content of the data file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Layout version of the file ([`FORMAT_VERSION`]).
    format: u32,
    /// The id the next new schema gets; ids are never reused, even after hard deletes.
    #[serde(default)]
    next_id: u32,
    /// Every schema by global id.
    #[serde(default)]
    schemas: BTreeMap<u32, StoredSchema>,
    /// Every subject's versions, oldest first.
    #[serde(default)]
    subjects: BTreeMap<String, Vec<SubjectVersion>>,
    /// The global level set through `PUT /config`; when absent the CLI default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    global_compatibility: Option<CompatibilityLevel>,
    /// Levels set through `PUT /config/{subject}`, overriding the global one.
    #[serde(default)]
    subject_compatibility: BTreeMap<String, CompatibilityLevel>,
}

/// Which version of a subject a request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version (`latest`, or `-1` as Confluent also accepts).
    Latest,
    /// A specific version number.
    Number(u32),
}

impl VersionSpec {
    /// Parses a version path segment; anything but `latest`, `-1` or 1..=2^31-1 is 42202.
    pub fn parse(text: &str) -> Result<Self> {
        if text.eq_ignore_ascii_case("latest") || text == "-1" {
            return Ok(Self::Latest);
        }
        match text.parse::<i64>() {
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(Self::Number(n as u32)),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        }
    }
}

/// A schema as seen through one subject version: what version reads and lookups return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSchema {
    /// The subject the version belongs to.
    pub subject: String,
    /// The version number within the subject.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// The schema text.
    pub schema: String,
    /// The schema's references.
    pub references: Vec<SchemaReference>,
}

/// A submission that passed validation and parsing, ready to compare or store.
struct Prepared {
    /// The schema text as submitted.
    text: String,
    /// The submitted references.
    references: Vec<SchemaReference>,
    /// The parsed schema.
    parsed: ParsedSchema,
    /// Its identity key.
    identity: String,
}

/// The registry: state, a derived index, and where (if anywhere) it is persisted.
#[derive(Debug)]
pub struct Store {
    /// The persisted data.
    state: State,
    /// identity key → schema id, derived from `state.schemas` to find re-registrations.
    identities: HashMap<String, u32>,
    /// The level used when neither a subject nor a global level was configured (`--compatibility`).
    default_compatibility: CompatibilityLevel,
    /// Where the state is persisted; `None` keeps it in memory only.
    data_file: Option<PathBuf>,
}

impl Store {
    /// An empty registry that lives in memory only.
    pub fn in_memory(default_compatibility: CompatibilityLevel) -> Self {
        Self {
            state: State {
                format: FORMAT_VERSION,
                next_id: 1,
                ..State::default()
            },
            identities: HashMap::new(),
            default_compatibility,
            data_file: None,
        }
    }

    /// A registry persisted in `data_file`: loaded from it when it exists, created on the
    /// first mutation otherwise. A file that is unreadable or inconsistent is an error
    /// rather than something to overwrite.
    pub fn open(
        data_file: Option<&Path>,
        default_compatibility: CompatibilityLevel,
    ) -> anyhow::Result<Self> {
        let mut store = Self::in_memory(default_compatibility);
        let Some(path) = data_file else {
            return Ok(store);
        };
        store.data_file = Some(path.to_owned());
        let Some(mut state) = persist::load::<State>(path)? else {
            tracing::info!(path = %path.display(), "data file does not exist yet; starting empty");
            return Ok(store);
        };
        anyhow::ensure!(
            state.format == FORMAT_VERSION,
            "data file {} has format {}, this build reads format {FORMAT_VERSION}",
            path.display(),
            state.format
        );
        for (subject, versions) in &state.subjects {
            for version in versions {
                anyhow::ensure!(
                    state.schemas.contains_key(&version.id),
                    "data file {} is inconsistent: subject '{subject}' version {} points to unknown schema id {}",
                    path.display(),
                    version.version,
                    version.id
                );
            }
        }
        let after_last = state.schemas.keys().next_back().map_or(1, |id| id + 1);
        state.next_id = state.next_id.max(after_last).max(1);
        if let Some(global) = state.global_compatibility {
            if global != default_compatibility {
                tracing::warn!(
                    stored = %global,
                    flag = %default_compatibility,
                    "the data file has a global compatibility level set through PUT /config; it overrides --compatibility"
                );
            }
        }
        tracing::info!(
            path = %path.display(),
            subjects = state.subjects.len(),
            schemas = state.schemas.len(),
            "loaded data file"
        );
        store.identities = index(&state);
        store.state = state;
        Ok(store)
    }

    /// Where the state is persisted, if anywhere.
    pub fn data_file(&self) -> Option<&Path> {
        self.data_file.as_deref()
    }

    // ----- reads -------------------------------------------------------------------------

    /// All subject names (sorted); soft-deleted subjects only when `include_deleted`.
    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.state
            .subjects
            .iter()
            .filter(|(_, versions)| include_deleted || versions.iter().any(|v| !v.deleted))
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// The version numbers of `subject`, oldest first (40401 when there are none).
    pub fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>> {
        let versions: Vec<u32> = self
            .versions_of(subject)
            .iter()
            .filter(|v| include_deleted || !v.deleted)
            .map(|v| v.version)
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// One version of a subject with its schema.
    pub fn get_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectSchema> {
        let version = self.find_version(subject, spec, include_deleted)?;
        Ok(self.subject_schema(subject, version))
    }

    /// The schema with global id `id` (40403 when unknown). Soft-deleted schemas stay
    /// readable by id, so old messages can always be decoded.
    pub fn schema_by_id(&self, id: u32) -> Result<&StoredSchema> {
        self.state
            .schemas
            .get(&id)
            .ok_or(RegistryError::SchemaNotFound(Some(id)))
    }

    /// Every (subject, version) that uses schema `id`.
    pub fn id_usages(&self, id: u32, include_deleted: bool) -> Result<Vec<(String, u32)>> {
        self.schema_by_id(id)?;
        Ok(self
            .state
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |v| v.id == id && (include_deleted || !v.deleted))
                    .map(move |v| (subject.clone(), v.version))
            })
            .collect())
    }

    /// The ids of live schemas that reference the given subject version.
    pub fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<u32>> {
        let version = self.find_version(subject, spec, false)?;
        Ok(self.referrers(subject, version.version, false))
    }

    /// Finds `submission` among the versions of `subject` (40401 when the subject has no
    /// versions, 40403 when the schema is not one of them). The newest match wins.
    pub fn lookup(
        &self,
        subject: &str,
        submission: &SchemaSubmission,
        include_deleted: bool,
    ) -> Result<SubjectSchema> {
        let prepared = self.prepare(submission)?;
        let versions: Vec<&SubjectVersion> = self
            .versions_of(subject)
            .iter()
            .filter(|v| include_deleted || !v.deleted)
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        versions
            .into_iter()
            .rev()
            .find(|v| self.state.schemas[&v.id].identity == prepared.identity)
            .map(|v| self.subject_schema(subject, *v))
            .ok_or(RegistryError::SchemaNotFound(None))
    }

    /// Tests `submission` against `subject` under its effective level without registering.
    ///
    /// `against` is `None` for "all versions" (the same check registration does), or one
    /// version. A subject without versions, tested against `latest`, is compatible, as in
    /// Confluent. Returns the violations; empty means compatible.
    pub fn test_compatibility(
        &self,
        subject: &str,
        against: Option<VersionSpec>,
        submission: &SchemaSubmission,
    ) -> Result<Vec<String>> {
        let existing: Vec<SubjectVersion> = match against {
            None => self.live_versions(subject).collect(),
            Some(VersionSpec::Latest) => self.live_versions(subject).last().into_iter().collect(),
            Some(spec) => vec![self.find_version(subject, spec, false)?],
        };
        let prepared = self.prepare(submission)?;
        self.check_against(subject, &prepared, &existing)
    }

    /// The level that applies to `subject` (subject level, else global, else the default);
    /// `None` asks for the global level.
    pub fn compatibility(&self, subject: Option<&str>) -> CompatibilityLevel {
        subject
            .and_then(|subject| self.subject_compatibility(subject))
            .or(self.state.global_compatibility)
            .unwrap_or(self.default_compatibility)
    }

    /// The level configured for `subject` itself, if any.
    pub fn subject_compatibility(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.state.subject_compatibility.get(subject).copied()
    }

    // ----- writes ------------------------------------------------------------------------

    /// Registers `submission` under `subject` and returns its global id.
    ///
    /// An identical schema already live under the subject returns its id without a new
    /// version. Otherwise the schema must pass the subject's compatibility level (409
    /// when not); it reuses the id of an identical schema from any subject, or gets a new one.
    pub fn register(&mut self, subject: &str, submission: &SchemaSubmission) -> Result<u32> {
        let prepared = self.prepare(submission)?;
        let live: Vec<SubjectVersion> = self.live_versions(subject).collect();
        if let Some(existing) = live
            .iter()
            .find(|v| self.state.schemas[&v.id].identity == prepared.identity)
        {
            return Ok(existing.id);
        }
        let violations = self.check_against(subject, &prepared, &live)?;
        if !violations.is_empty() {
            return Err(RegistryError::IncompatibleSchema(format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                violations.join(", ")
            )));
        }

        let mut next = self.state.clone();
        let id = match self.identities.get(&prepared.identity) {
            Some(id) => *id,
            None => {
                let id = next.next_id;
                next.next_id += 1;
                next.schemas.insert(
                    id,
                    StoredSchema {
                        schema: prepared.text,
                        references: prepared.references,
                        identity: prepared.identity,
                    },
                );
                id
            }
        };
        let versions = next.subjects.entry(subject.to_owned()).or_default();
        let version = versions.last().map_or(1, |v| v.version + 1);
        versions.push(SubjectVersion {
            version,
            id,
            deleted: false,
        });
        self.commit(next)?;
        tracing::info!(subject, version, id, "registered schema");
        Ok(id)
    }

    /// Sets the global level (`subject` = `None`) or a subject's level. A subject does not
    /// have to exist yet, as in Confluent.
    pub fn set_compatibility(
        &mut self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<()> {
        let mut next = self.state.clone();
        match subject {
            None => next.global_compatibility = Some(level),
            Some(subject) => {
                next.subject_compatibility.insert(subject.to_owned(), level);
            }
        }
        self.commit(next)
    }

    /// Removes a subject's own level (it falls back to the global one); returns the old level.
    pub fn delete_subject_compatibility(&mut self, subject: &str) -> Result<CompatibilityLevel> {
        let mut next = self.state.clone();
        let previous = next
            .subject_compatibility
            .remove(subject)
            .ok_or_else(|| RegistryError::SubjectCompatibilityNotConfigured(subject.to_owned()))?;
        self.commit(next)?;
        Ok(previous)
    }

    /// Deletes a subject and returns the affected version numbers.
    ///
    /// Soft delete hides the live versions (they keep their numbers and ids); permanent
    /// delete (only after a soft delete, as in Confluent) removes the subject, its config
    /// and any schema no other version uses. Versions still referenced are refused (42206).
    pub fn delete_subject(&mut self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let all = self.versions_of(subject);
        if all.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let mut next = self.state.clone();
        let affected: Vec<u32> = if permanent {
            if all.iter().any(|v| !v.deleted) {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            let affected: Vec<u32> = all.iter().map(|v| v.version).collect();
            self.refuse_if_referenced(subject, &affected, true)?;
            next.subjects.remove(subject);
            next.subject_compatibility.remove(subject);
            collect_garbage(&mut next);
            affected
        } else {
            let affected: Vec<u32> = all
                .iter()
                .filter(|v| !v.deleted)
                .map(|v| v.version)
                .collect();
            if affected.is_empty() {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
            }
            self.refuse_if_referenced(subject, &affected, false)?;
            for version in next.subjects.get_mut(subject).into_iter().flatten() {
                version.deleted = true;
            }
            affected
        };
        self.commit(next)?;
        tracing::info!(subject, permanent, versions = ?affected, "deleted subject");
        Ok(affected)
    }

    /// Deletes one version (soft, or permanent after a soft delete) and returns its number.
    pub fn delete_version(
        &mut self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32> {
        let all = self.versions_of(subject);
        if all.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let target = match spec {
            // Permanent deletes address soft-deleted versions, so `latest` includes them.
            VersionSpec::Latest if permanent => all.last().copied(),
            VersionSpec::Latest => all.iter().rev().find(|v| !v.deleted).copied(),
            VersionSpec::Number(n) => all.iter().find(|v| v.version == n).copied(),
        };
        let Some(target) = target else {
            return Err(match spec {
                VersionSpec::Number(n) => RegistryError::VersionNotFound(n),
                VersionSpec::Latest => RegistryError::SubjectNotFound(subject.to_owned()),
            });
        };
        match (permanent, target.deleted) {
            (false, true) => {
                return Err(RegistryError::VersionSoftDeleted(
                    subject.to_owned(),
                    target.version,
                ))
            }
            (true, false) => {
                return Err(RegistryError::VersionNotSoftDeleted(
                    subject.to_owned(),
                    target.version,
                ))
            }
            _ => {}
        }
        self.refuse_if_referenced(subject, &[target.version], permanent)?;
        let mut next = self.state.clone();
        if let Some(versions) = next.subjects.get_mut(subject) {
            if permanent {
                versions.retain(|v| v.version != target.version);
                if versions.is_empty() {
                    next.subjects.remove(subject);
                }
                collect_garbage(&mut next);
            } else if let Some(version) = versions.iter_mut().find(|v| v.version == target.version)
            {
                version.deleted = true;
            }
        }
        self.commit(next)?;
        tracing::info!(
            subject,
            version = target.version,
            permanent,
            "deleted version"
        );
        Ok(target.version)
    }

    // ----- internals ---------------------------------------------------------------------

    /// All versions of a subject, oldest first (empty when unknown).
    fn versions_of(&self, subject: &str) -> &[SubjectVersion] {
        self.state
            .subjects
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The versions of a subject that are not soft-deleted, oldest first.
    fn live_versions(&self, subject: &str) -> impl Iterator<Item = SubjectVersion> + '_ {
        self.versions_of(subject)
            .iter()
            .filter(|v| !v.deleted)
            .copied()
    }

    /// Resolves a version spec: 40401 when the subject has no (visible) versions, 40402
    /// when it has but not this one.
    fn find_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectVersion> {
        let visible: Vec<SubjectVersion> = self
            .versions_of(subject)
            .iter()
            .filter(|v| include_deleted || !v.deleted)
            .copied()
            .collect();
        if visible.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        match spec {
            VersionSpec::Latest => Ok(visible[visible.len() - 1]),
            VersionSpec::Number(n) => visible
                .into_iter()
                .find(|v| v.version == n)
                .ok_or(RegistryError::VersionNotFound(n)),
        }
    }

    /// Builds the client-facing view of a version.
    fn subject_schema(&self, subject: &str, version: SubjectVersion) -> SubjectSchema {
        let stored = &self.state.schemas[&version.id];
        SubjectSchema {
            subject: subject.to_owned(),
            version: version.version,
            id: version.id,
            schema: stored.schema.clone(),
            references: stored.references.clone(),
        }
    }

    /// Validates and parses a submission (type, text, references).
    fn prepare(&self, submission: &SchemaSubmission) -> Result<Prepared> {
        submission.check_type()?;
        let text = submission.schema_text()?;
        let references = submission.references().to_vec();
        let referenced = self.referenced_texts(&references)?;
        let parsed = schema::parse(text, &referenced)?;
        let identity = schema::identity_key(&parsed.normalized, &references);
        Ok(Prepared {
            text: text.to_owned(),
            references,
            parsed,
            identity,
        })
    }

    /// The texts of every schema reachable through `references` (transitively), each once.
    /// Soft-deleted versions still count: existing schemas may depend on them.
    fn referenced_texts(&self, references: &[SchemaReference]) -> Result<Vec<String>> {
        let mut texts = Vec::new();
        let mut seen = HashSet::new();
        let mut pending: Vec<SchemaReference> = references.to_vec();
        while let Some(reference) = pending.pop() {
            if !seen.insert((reference.subject.clone(), reference.version)) {
                continue;
            }
            let version = self
                .versions_of(&reference.subject)
                .iter()
                .find(|v| v.version == reference.version)
                .ok_or_else(|| {
                    RegistryError::InvalidSchema(format!(
                        "Invalid schema: reference '{}' points to subject '{}' version {}, which does not exist",
                        reference.name, reference.subject, reference.version
                    ))
                })?;
            let stored = &self.state.schemas[&version.id];
            texts.push(stored.schema.clone());
            pending.extend(stored.references.iter().cloned());
        }
        Ok(texts)
    }

    /// The registered schema `id` parsed with its references inlined.
    fn resolved_schema(&self, id: u32) -> Result<Schema> {
        let stored = self.schema_by_id(id)?;
        let referenced = self.referenced_texts(&stored.references)?;
        schema::parse(&stored.schema, &referenced)
            .map(|parsed| parsed.resolved)
            .map_err(|error| {
                RegistryError::Store(format!("stored schema {id} no longer parses: {error}"))
            })
    }

    /// Runs the subject's compatibility rule for `prepared` against `existing` (oldest first).
    fn check_against(
        &self,
        subject: &str,
        prepared: &Prepared,
        existing: &[SubjectVersion],
    ) -> Result<Vec<String>> {
        let level = self.compatibility(Some(subject));
        if level == CompatibilityLevel::None || existing.is_empty() {
            return Ok(Vec::new());
        }
        let schemas = existing
            .iter()
            .map(|v| self.resolved_schema(v.id))
            .collect::<Result<Vec<_>>>()?;
        let existing: Vec<ExistingVersion<'_>> = existing
            .iter()
            .zip(&schemas)
            .map(|(v, schema)| ExistingVersion {
                version: v.version,
                schema,
            })
            .collect();
        Ok(compatibility::check(
            level,
            &prepared.parsed.resolved,
            &existing,
        ))
    }

    /// Ids of schemas (under live versions, or any version with `include_deleted`) that
    /// reference `subject` version `version`.
    fn referrers(&self, subject: &str, version: u32, include_deleted: bool) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .state
            .subjects
            .values()
            .flatten()
            .filter(|v| include_deleted || !v.deleted)
            .map(|v| v.id)
            .filter(|id| {
                self.state.schemas[id]
                    .references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// 42206 when any of `versions` of `subject` is still referenced.
    fn refuse_if_referenced(
        &self,
        subject: &str,
        versions: &[u32],
        include_deleted_referrers: bool,
    ) -> Result<()> {
        for version in versions {
            let referrers = self.referrers(subject, *version, include_deleted_referrers);
            if !referrers.is_empty() {
                return Err(RegistryError::ReferenceExists(format!(
                    "One or more references exist to the schema {{subject={subject},version={version}}}: schema ids {referrers:?}"
                )));
            }
        }
        Ok(())
    }

    /// Persists `next` (if a data file is configured) and makes it current.
    fn commit(&mut self, next: State) -> Result<()> {
        if let Some(path) = &self.data_file {
            persist::save(path, &next).map_err(|error| {
                RegistryError::Store(format!(
                    "Error while writing data file {}: {error}",
                    path.display()
                ))
            })?;
        }
        self.identities = index(&next);
        self.state = next;
        Ok(())
    }
}

/// Builds the identity → id index of a state.
fn index(state: &State) -> HashMap<String, u32> {
    state
        .schemas
        .iter()
        .map(|(id, stored)| (stored.identity.clone(), *id))
        .collect()
}

/// Drops schemas that no version (live or soft-deleted) uses any more.
fn collect_garbage(state: &mut State) {
    let used: HashSet<u32> = state.subjects.values().flatten().map(|v| v.id).collect();
    state.schemas.retain(|id, _| used.contains(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","namespace":"echo.test","fields":[{"name":"id","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"User","namespace":"echo.test","fields":[{"name":"id","type":"string"},{"name":"age","type":"int","default":0}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"User","namespace":"echo.test","fields":[{"name":"id","type":"string"},{"name":"age","type":"int"}]}"#;

    fn avro(text: &str) -> SchemaSubmission {
        SchemaSubmission::avro(text)
    }

    #[test]
    fn register_dedupes_and_shares_ids_across_subjects() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        let id = store.register("a", &avro(V1)).unwrap();
        assert_eq!(id, 1);
        assert_eq!(store.register("a", &avro(V1)).unwrap(), id);
        assert_eq!(store.versions("a", false).unwrap(), vec![1]);
        assert_eq!(store.register("b", &avro(V1)).unwrap(), id);
        assert_eq!(store.register("a", &avro(V2)).unwrap(), 2);
        assert_eq!(store.versions("a", false).unwrap(), vec![1, 2]);
        let latest = store.get_version("a", VersionSpec::Latest, false).unwrap();
        assert_eq!((latest.version, latest.id), (2, 2));
        assert_eq!(
            store.id_usages(1, false).unwrap(),
            vec![("a".to_owned(), 1), ("b".to_owned(), 1)]
        );
    }

    #[test]
    fn incompatible_schema_is_refused_and_not_stored() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        store.register("a", &avro(V1)).unwrap();
        let error = store.register("a", &avro(V2_NO_DEFAULT)).unwrap_err();
        assert_eq!(error.error_code(), 409);
        assert_eq!(store.versions("a", false).unwrap(), vec![1]);
        assert!(store.schema_by_id(2).is_err());
        // The same change passes once the subject allows it.
        store
            .set_compatibility(Some("a"), CompatibilityLevel::None)
            .unwrap();
        assert_eq!(store.register("a", &avro(V2_NO_DEFAULT)).unwrap(), 2);
    }

    #[test]
    fn lookup_and_errors() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        store.register("a", &avro(V1)).unwrap();
        let found = store.lookup("a", &avro(V1), false).unwrap();
        assert_eq!(
            (found.subject.as_str(), found.version, found.id),
            ("a", 1, 1)
        );
        assert_eq!(
            store
                .lookup("a", &avro(V2), false)
                .unwrap_err()
                .error_code(),
            40403
        );
        assert_eq!(
            store
                .lookup("zz", &avro(V1), false)
                .unwrap_err()
                .error_code(),
            40401
        );
        assert_eq!(
            store
                .get_version("a", VersionSpec::Number(7), false)
                .unwrap_err()
                .error_code(),
            40402
        );
        assert_eq!(VersionSpec::parse("0").unwrap_err().error_code(), 42202);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
    }

    #[test]
    fn soft_delete_hides_versions_and_numbers_continue() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        store.register("a", &avro(V1)).unwrap();
        assert_eq!(store.delete_subject("a", false).unwrap(), vec![1]);
        assert!(store.subjects(false).is_empty());
        assert_eq!(store.subjects(true), vec!["a".to_owned()]);
        assert_eq!(store.versions("a", false).unwrap_err().error_code(), 40401);
        assert_eq!(
            store.delete_subject("a", false).unwrap_err().error_code(),
            40404
        );
        // Still decodable by id.
        assert!(store.schema_by_id(1).is_ok());
        // Re-registering keeps the id but gets a new version; no compatibility check
        // against deleted versions.
        assert_eq!(store.register("a", &avro(V2_NO_DEFAULT)).unwrap(), 2);
        assert_eq!(store.versions("a", true).unwrap(), vec![1, 2]);
        // A schema identical to a deleted version is a new version with the old id.
        assert_eq!(store.register("a", &avro(V1)).unwrap(), 1);
        assert_eq!(store.versions("a", true).unwrap(), vec![1, 2, 3]);
        assert_eq!(store.versions("a", false).unwrap(), vec![2, 3]);
    }

    #[test]
    fn permanent_delete_requires_soft_delete_and_frees_schemas() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        store.register("a", &avro(V1)).unwrap();
        assert_eq!(
            store.delete_subject("a", true).unwrap_err().error_code(),
            40405
        );
        store.delete_subject("a", false).unwrap();
        assert_eq!(store.delete_subject("a", true).unwrap(), vec![1]);
        assert_eq!(store.schema_by_id(1).unwrap_err().error_code(), 40403);
        // Ids are never reused.
        assert_eq!(store.register("a", &avro(V1)).unwrap(), 2);
    }

    #[test]
    fn compatibility_falls_back_subject_global_default() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        assert_eq!(store.compatibility(Some("a")), CompatibilityLevel::Backward);
        store
            .set_compatibility(None, CompatibilityLevel::Full)
            .unwrap();
        assert_eq!(store.compatibility(Some("a")), CompatibilityLevel::Full);
        store
            .set_compatibility(Some("a"), CompatibilityLevel::None)
            .unwrap();
        assert_eq!(store.compatibility(Some("a")), CompatibilityLevel::None);
        assert_eq!(store.compatibility(None), CompatibilityLevel::Full);
        assert_eq!(
            store.delete_subject_compatibility("a").unwrap(),
            CompatibilityLevel::None
        );
        assert_eq!(
            store
                .delete_subject_compatibility("a")
                .unwrap_err()
                .error_code(),
            40408
        );
    }

    #[test]
    fn references_resolve_and_block_deletes() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        let address = r#"{"type":"record","name":"Address","namespace":"echo","fields":[{"name":"city","type":"string"}]}"#;
        let person = r#"{"type":"record","name":"Person","namespace":"echo","fields":[{"name":"home","type":"echo.Address"}]}"#;
        store.register("address", &avro(address)).unwrap();
        let mut submission = avro(person);
        assert_eq!(
            store
                .register("person", &submission)
                .unwrap_err()
                .error_code(),
            42201
        );
        submission.references = Some(vec![SchemaReference {
            name: "echo.Address".to_owned(),
            subject: "address".to_owned(),
            version: 1,
        }]);
        let id = store.register("person", &submission).unwrap();
        assert_eq!(
            store.referenced_by("address", VersionSpec::Latest).unwrap(),
            vec![id]
        );
        assert_eq!(
            store
                .delete_subject("address", false)
                .unwrap_err()
                .error_code(),
            42206
        );
        // References are part of a schema's identity, so lookups send them too.
        assert_eq!(store.lookup("person", &submission, false).unwrap().id, id);
    }

    #[test]
    fn test_compatibility_without_registering() {
        let mut store = Store::in_memory(CompatibilityLevel::Backward);
        let missing = store
            .test_compatibility("a", Some(VersionSpec::Latest), &avro(V2_NO_DEFAULT))
            .unwrap();
        assert!(missing.is_empty());
        assert_eq!(
            store
                .test_compatibility("a", Some(VersionSpec::Number(1)), &avro(V1))
                .unwrap_err()
                .error_code(),
            40401
        );
        store.register("a", &avro(V1)).unwrap();
        assert!(!store
            .test_compatibility("a", Some(VersionSpec::Latest), &avro(V2_NO_DEFAULT))
            .unwrap()
            .is_empty());
        assert!(store
            .test_compatibility("a", None, &avro(V2))
            .unwrap()
            .is_empty());
        assert_eq!(store.versions("a", false).unwrap(), vec![1]);
    }

    #[test]
    fn data_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("echo-sr-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.json");
        let _ = std::fs::remove_file(&path);
        {
            let mut store = Store::open(Some(&path), CompatibilityLevel::Backward).unwrap();
            store.register("a", &avro(V1)).unwrap();
            store.register("a", &avro(V2)).unwrap();
            store
                .set_compatibility(Some("a"), CompatibilityLevel::Full)
                .unwrap();
        }
        let mut store = Store::open(Some(&path), CompatibilityLevel::Backward).unwrap();
        assert_eq!(store.versions("a", false).unwrap(), vec![1, 2]);
        assert_eq!(store.compatibility(Some("a")), CompatibilityLevel::Full);
        assert_eq!(store.register("b", &avro(V2)).unwrap(), 2);
        let v3 = V2.replace("\"default\":0", "\"default\":1");
        assert_eq!(store.register("b", &avro(&v3)).unwrap(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
