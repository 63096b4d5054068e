//! What a client submits as a schema, and how it is parsed and normalised.
//!
//! Two submissions are "the same schema" (same global id, no new version) when their
//! normalised form and references match. The normalised form is the parsed schema written
//! back as compact JSON by apache-avro: whitespace, key order and equivalent spellings
//! (`{"type":"string"}` vs `"string"`) disappear, but defaults, docs, aliases and logical
//! types stay. That mirrors Confluent, which compares Avro's `Schema.toString()`. Avro's
//! *Parsing Canonical Form* is deliberately not used: it drops `default`, so adding a
//! default to a field would be mistaken for re-registering the old schema.

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::error::{error_chain, RegistryError};
use crate::limits;

/// The only schema type this registry implements (Confluent's name for it).
pub const AVRO: &str = "AVRO";

/// A pointer from one schema to a named type registered under another subject.
///
/// Confluent clients send these with `references` so a schema can use a record defined
/// elsewhere; the registry resolves them when parsing and returns them unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The full name of the referenced Avro type as it is used in the referring schema.
    pub name: String,
    /// The subject the referenced schema is registered under.
    pub subject: String,
    /// The version of that subject to use.
    pub version: u32,
}

/// The body of register, lookup and compatibility-test requests.
///
/// Every field is optional so that a missing one becomes a Confluent-style 422 instead of
/// a generic deserialisation error; unknown fields (`metadata`, `ruleSet`, ...) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSubmission {
    /// The schema text (Avro JSON).
    #[serde(default)]
    pub schema: Option<String>,
    /// `AVRO` (the default when absent); anything else is rejected.
    #[serde(default)]
    pub schema_type: Option<String>,
    /// Named types this schema uses from other subjects.
    #[serde(default)]
    pub references: Option<Vec<SchemaReference>>,
}

impl SchemaSubmission {
    /// A plain Avro submission without references.
    pub fn avro(schema: impl Into<String>) -> Self {
        Self {
            schema: Some(schema.into()),
            schema_type: None,
            references: None,
        }
    }

    /// The schema text, or 42201 when it is missing or blank.
    pub fn schema_text(&self) -> Result<&str, RegistryError> {
        match self.schema.as_deref() {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => Err(RegistryError::InvalidSchema("Empty schema".to_owned())),
        }
    }

    /// Rejects every schema type but Avro (an absent type means Avro, as in Confluent).
    pub fn check_type(&self) -> Result<(), RegistryError> {
        match self.schema_type.as_deref() {
            None => Ok(()),
            Some(kind) if kind.eq_ignore_ascii_case(AVRO) => Ok(()),
            Some(kind) => Err(RegistryError::InvalidSchema(format!(
                "Unsupported schema type '{kind}': this registry (echo-schema-registry) only supports AVRO"
            ))),
        }
    }

    /// The references, empty when none were sent.
    pub fn references(&self) -> &[SchemaReference] {
        self.references.as_deref().unwrap_or_default()
    }
}

/// An Avro schema that parsed, in the two forms the registry works with.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    /// The schema with every referenced type inlined: what compatibility checks run on.
    pub resolved: Schema,
    /// The normalised JSON of the schema as written (references kept as names): the
    /// identity used to recognise re-registrations. See the module docs.
    pub normalized: String,
}

/// Parses `text`, resolving named types against `referenced` (the texts of every schema
/// reachable through its references, in any order). A text over the [`limits`] is refused
/// before it is parsed.
pub fn parse(text: &str, referenced: &[String]) -> Result<ParsedSchema, RegistryError> {
    limits::check(text)?;
    let invalid = |error: apache_avro::Error| {
        RegistryError::InvalidSchema(format!("Invalid schema {text}: {}", error_chain(&error)))
    };
    let (schema, named) = if referenced.is_empty() {
        (Schema::parse_str(text).map_err(invalid)?, Vec::new())
    } else {
        Schema::parse_str_with_list(text, referenced).map_err(invalid)?
    };
    let normalized = serde_json::to_string(&schema)
        .map_err(|error| RegistryError::InvalidSchema(format!("Invalid schema {text}: {error}")))?;
    let mut resolved = schema;
    resolved.denormalize(&named).map_err(invalid)?;
    Ok(ParsedSchema {
        resolved,
        normalized,
    })
}

/// The identity of a schema: equal keys mean one global id.
pub fn identity_key(normalized: &str, references: &[SchemaReference]) -> String {
    if references.is_empty() {
        normalized.to_owned()
    } else {
        // Serialising a tuple of a string and plain structs cannot fail.
        serde_json::to_string(&(normalized, references)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_key_order_do_not_change_identity() {
        let a = parse(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
            &[],
        )
        .unwrap();
        let b = parse(
            r#"{ "fields" : [ { "type" : "int", "name" : "x" } ],
                 "name" : "A", "type" : "record" }"#,
            &[],
        )
        .unwrap();
        assert_eq!(a.normalized, b.normalized);
        assert_eq!(
            parse(r#""string""#, &[]).unwrap().normalized,
            parse(r#"{"type":"string"}"#, &[]).unwrap().normalized
        );
    }

    #[test]
    fn defaults_are_part_of_identity() {
        let plain = parse(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
            &[],
        )
        .unwrap();
        let with_default = parse(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":3}]}"#,
            &[],
        )
        .unwrap();
        assert_ne!(plain.normalized, with_default.normalized);
    }

    #[test]
    fn references_are_resolved_and_inlined() {
        let address = r#"{"type":"record","name":"Address","namespace":"echo","fields":[{"name":"city","type":"string"}]}"#.to_owned();
        let person = r#"{"type":"record","name":"Person","namespace":"echo","fields":[{"name":"home","type":"echo.Address"}]}"#;
        assert!(parse(person, &[]).is_err());
        let parsed = parse(person, &[address]).unwrap();
        assert!(parsed.normalized.contains("\"echo.Address\""));
        let inlined = serde_json::to_string(&parsed.resolved).unwrap();
        assert!(inlined.contains("city"), "{inlined}");
    }

    #[test]
    fn garbage_and_other_types_are_rejected() {
        let error = parse("{not json", &[]).unwrap_err();
        assert_eq!(error.error_code(), 42201);
        let protobuf = SchemaSubmission {
            schema: Some("syntax = \"proto3\";".to_owned()),
            schema_type: Some("PROTOBUF".to_owned()),
            references: None,
        };
        assert_eq!(protobuf.check_type().unwrap_err().error_code(), 42201);
        assert!(SchemaSubmission::avro("  ").schema_text().is_err());
    }
}
