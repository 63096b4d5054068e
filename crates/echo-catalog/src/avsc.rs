//! The `.avsc` files of `avro/` as the Schema Registry and every reader see them.
//!
//! A type several records share (`EventMetadata`, `TranscriptOptions`, …) is written once, in a
//! file named after it (`avro/common/EventMetadata.avsc`), and the records name it by its full
//! name (`"type": "echo.common.EventMetadata"`). What is registered is each record with those
//! definitions put in at their first use: a self-contained schema any Avro library reads.
//!
//! Self-contained rather than registry references, because the Rust converter echo decodes with
//! resolves a reference only when it is written with a leading dot or lies in the referring
//! record's own namespace, and echo's shared types live in other namespaces.
//!
//! Also compiled into the build script, which writes those schemas at build time: it depends on
//! `serde_json` only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde_json::Value;

/// One `.avsc` file of `avro/`.
#[derive(Debug, Clone)]
pub struct AvscFile {
    /// Its folder: a bounded context, or `common`.
    pub context: String,
    /// Its name without `.avsc`: a dotted type name (`upload.requested`) for an event or
    /// command, a type name (`EventMetadata`) for a shared type.
    pub stem: String,
    /// Its text.
    pub text: String,
}

impl AvscFile {
    /// Whether the file holds a type records share rather than an event or command: shared
    /// types are named as Avro names them (`TranscriptOptions`), records by their dotted name.
    pub fn is_shared_type(&self) -> bool {
        self.stem.starts_with(|c: char| c.is_ascii_uppercase())
    }
}

/// Why a schema cannot be made self-contained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvscError(pub String);

impl fmt::Display for AvscError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AvscError {}

/// Every `.avsc` under `dir` (`<dir>/<folder>/<stem>.avsc`), in folder and file name order.
pub fn read_dir(dir: &Path) -> Result<Vec<AvscFile>, AvscError> {
    let io = |e: std::io::Error, path: &Path| AvscError(format!("{}: {e}", path.display()));
    let mut files = Vec::new();
    let mut folders: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(e, dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let mut paths: Vec<_> = std::fs::read_dir(&folder)
            .map_err(|e| io(e, &folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
            .collect();
        paths.sort();
        for path in paths {
            let name = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
            files.push(AvscFile {
                context: name(&folder).unwrap_or_default(),
                stem: name(&path).unwrap_or_default(),
                text: std::fs::read_to_string(&path).map_err(|e| io(e, &path))?,
            });
        }
    }
    Ok(files)
}

/// The shared types among `files`, by full name (`echo.common.EventMetadata`).
pub fn shared_types(files: &[AvscFile]) -> Result<BTreeMap<String, Value>, AvscError> {
    let mut shared = BTreeMap::new();
    for file in files.iter().filter(|f| f.is_shared_type()) {
        let json = parse(file)?;
        let name = full_name(&json).ok_or_else(|| {
            AvscError(format!("{}/{}.avsc names no type", file.context, file.stem))
        })?;
        if !name.ends_with(&format!(".{}", file.stem)) {
            return Err(AvscError(format!(
                "{}/{}.avsc defines {name}: a shared type's file is named after it",
                file.context, file.stem
            )));
        }
        shared.insert(name, json);
    }
    Ok(shared)
}

/// `file` with every shared type it uses defined at its first use, as JSON text.
pub fn self_contained(
    file: &AvscFile,
    shared: &BTreeMap<String, Value>,
) -> Result<String, AvscError> {
    let mut json = parse(file)?;
    let mut defined = BTreeSet::new();
    inline(&mut json, shared, &mut defined);
    serde_json::to_string_pretty(&json).map_err(|e| AvscError(e.to_string()))
}

fn parse(file: &AvscFile) -> Result<Value, AvscError> {
    serde_json::from_str(&file.text)
        .map_err(|e| AvscError(format!("{}/{}.avsc: {e}", file.context, file.stem)))
}

/// The full name a named schema defines: `namespace.name`, or `name` when it has a dot.
fn full_name(json: &Value) -> Option<String> {
    let name = json.get("name")?.as_str()?;
    Some(match json.get("namespace").and_then(Value::as_str) {
        Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_owned(),
    })
}

/// Walks a schema in document order (the order Avro reads names in): a definition is
/// remembered, and a full name of a shared type not yet defined is replaced by its definition.
fn inline(schema: &mut Value, shared: &BTreeMap<String, Value>, defined: &mut BTreeSet<String>) {
    if let Value::String(name) = schema {
        if defined.contains(name.as_str()) {
            return;
        }
        match shared.get(name.as_str()) {
            Some(definition) => *schema = definition.clone(),
            None => return,
        }
    }
    let kind = schema.get("type").cloned();
    match (schema, kind) {
        (Value::Array(union), _) => union.iter_mut().for_each(|s| inline(s, shared, defined)),
        (schema @ Value::Object(_), Some(Value::String(kind))) => {
            if matches!(kind.as_str(), "record" | "error" | "enum" | "fixed") {
                defined.extend(full_name(schema));
            }
            let nested: Vec<&mut Value> = match kind.as_str() {
                "record" | "error" => match schema.get_mut("fields") {
                    Some(Value::Array(fields)) => fields
                        .iter_mut()
                        .filter_map(|f| f.get_mut("type"))
                        .collect(),
                    _ => Vec::new(),
                },
                "array" => schema.get_mut("items").into_iter().collect(),
                "map" => schema.get_mut("values").into_iter().collect(),
                // `{"type": "<full name>"}` wraps a named type.
                _ => schema.get_mut("type").into_iter().collect(),
            };
            nested.into_iter().for_each(|s| inline(s, shared, defined));
        }
        // `{"type": {...}}` or `{"type": [...]}` wraps a type.
        (schema @ Value::Object(_), Some(_)) => {
            if let Some(t) = schema.get_mut("type") {
                inline(t, shared, defined);
            }
        }
        _ => {}
    }
}
