//! Compatibility levels and the check that enforces them.
//!
//! The rules are Confluent's: BACKWARD means consumers on the new schema can read data
//! written with the latest registered schema, FORWARD means consumers still on the latest
//! schema can read data written with the new one, FULL is both, and the `_TRANSITIVE`
//! variants compare against every live version instead of only the latest. The Avro
//! schema-resolution rules themselves come from
//! [`apache_avro::schema_compatibility::SchemaCompatibility::can_read`].

use std::fmt;
use std::str::FromStr;

use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::error::error_chain;

/// How a new schema must relate to the versions already registered under a subject.
///
/// Serialized as Confluent spells it (`BACKWARD`, `FULL_TRANSITIVE`, ...), both in the
/// HTTP API and in the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check at all: any schema can follow any other.
    None,
    /// The new schema can read data written with the latest version.
    Backward,
    /// The new schema can read data written with every live version.
    BackwardTransitive,
    /// The latest version can read data written with the new schema.
    Forward,
    /// Every live version can read data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every live version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Every level, in the order Confluent documents them.
    pub const ALL: [CompatibilityLevel; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    /// Confluent's name for the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema must be checked against all versions, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether the new schema must be able to read old data.
    fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether old schemas must be able to read data written with the new one.
    fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = String;

    /// Case-insensitive, like Confluent's config endpoint.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown compatibility level '{s}' (expected one of {})",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// A registered version that a candidate schema is checked against.
#[derive(Debug, Clone, Copy)]
pub struct ExistingVersion<'a> {
    /// The version number under the subject, used in messages.
    pub version: u32,
    /// The version's schema with all references inlined.
    pub schema: &'a Schema,
}

/// Checks `candidate` against `existing` (oldest first) under `level`.
///
/// Returns one message per violation; an empty list means compatible. Only versions that
/// `level` asks for are looked at: the last one, or all of them when transitive.
pub fn check(
    level: CompatibilityLevel,
    candidate: &Schema,
    existing: &[ExistingVersion<'_>],
) -> Vec<String> {
    let against: &[ExistingVersion<'_>] = if level.is_transitive() {
        existing
    } else {
        match existing.split_last() {
            Some((_, earlier)) => &existing[earlier.len()..],
            None => &[],
        }
    };
    let mut messages = Vec::new();
    for old in against {
        if level.checks_backward() {
            if let Err(reason) = can_read(old.schema, candidate) {
                messages.push(format!(
                    "{level}: the new schema cannot read data written with version {}: {reason}",
                    old.version
                ));
            }
        }
        if level.checks_forward() {
            if let Err(reason) = can_read(candidate, old.schema) {
                messages.push(format!(
                    "{level}: version {} cannot read data written with the new schema: {reason}",
                    old.version
                ));
            }
        }
    }
    messages
}

/// Whether data written with `writer` can always be read with `reader`.
///
/// apache-avro distinguishes "partial" compatibility (reading works for some values only,
/// e.g. the reader's enum lacks some of the writer's symbols). Confluent rejects those
/// cases, so only full compatibility passes here.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "only some values can be read (an enum symbol or union branch of the writer is missing in the reader)"
                .to_owned(),
        ),
        Err(error) => Err(describe(&error)),
    }
}

/// A one-line explanation of a compatibility error.
///
/// apache-avro's `WrongType` message embeds the `Debug` dump of both schemas (many lines
/// for a record), which is unreadable in a 409 message; only the type names are kept.
fn describe(error: &CompatibilityError) -> String {
    match error {
        CompatibilityError::WrongType {
            writer_schema_type,
            reader_schema_type,
        } => format!(
            "the writer's {} cannot be read as {}",
            type_name(writer_schema_type),
            type_name(reader_schema_type)
        ),
        CompatibilityError::FieldTypeMismatch(field, inner) => {
            format!(
                "field '{field}' has an incompatible type: {}",
                describe(inner)
            )
        }
        other => error_chain(other),
    }
}

/// The leading type name of a schema's `Debug` text (`Record(RecordSchema { .. })` → `record`).
fn type_name(debug: &str) -> String {
    debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .find(|part| !part.is_empty())
        .unwrap_or(debug)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"User","namespace":"echo.test","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    fn versions(schemas: &[Schema]) -> Vec<ExistingVersion<'_>> {
        schemas
            .iter()
            .enumerate()
            .map(|(i, schema)| ExistingVersion {
                version: i as u32 + 1,
                schema,
            })
            .collect()
    }

    #[test]
    fn parses_levels_case_insensitively() {
        assert_eq!(
            "backward_transitive".parse::<CompatibilityLevel>(),
            Ok(CompatibilityLevel::BackwardTransitive)
        );
        assert_eq!("FULL".parse(), Ok(CompatibilityLevel::Full));
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
        for level in CompatibilityLevel::ALL {
            assert_eq!(level.as_str().parse(), Ok(level));
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{level}\""));
        }
    }

    #[test]
    fn backward_allows_added_field_with_default_only() {
        let v1 = [record(r#"{"name":"id","type":"string"}"#)];
        let with_default =
            record(r#"{"name":"id","type":"string"},{"name":"age","type":"int","default":0}"#);
        let without_default =
            record(r#"{"name":"id","type":"string"},{"name":"age","type":"int"}"#);
        let level = CompatibilityLevel::Backward;
        assert!(check(level, &with_default, &versions(&v1)).is_empty());
        let messages = check(level, &without_default, &versions(&v1));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("age"), "{messages:?}");
    }

    #[test]
    fn forward_allows_added_field_without_default() {
        let v1 = [record(r#"{"name":"id","type":"string"}"#)];
        let added = record(r#"{"name":"id","type":"string"},{"name":"age","type":"int"}"#);
        assert!(check(CompatibilityLevel::Forward, &added, &versions(&v1)).is_empty());
        assert!(!check(CompatibilityLevel::Full, &added, &versions(&v1)).is_empty());
        assert!(check(CompatibilityLevel::None, &added, &versions(&v1)).is_empty());
    }

    #[test]
    fn type_change_is_incompatible_but_promotion_is_backward() {
        let v1 = [record(r#"{"name":"n","type":"int"}"#)];
        let promoted = record(r#"{"name":"n","type":"long"}"#);
        let changed = record(r#"{"name":"n","type":"boolean"}"#);
        assert!(check(CompatibilityLevel::Backward, &promoted, &versions(&v1)).is_empty());
        assert!(!check(CompatibilityLevel::Forward, &promoted, &versions(&v1)).is_empty());
        let messages = check(CompatibilityLevel::Backward, &changed, &versions(&v1));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("field 'n'")
                && messages[0].contains("writer's int cannot be read as boolean"),
            "{messages:?}"
        );
        let whole = Schema::parse_str(r#""string""#).unwrap();
        let messages = check(CompatibilityLevel::Backward, &whole, &versions(&v1));
        assert!(!messages[0].contains('\n'), "{messages:?}");
        assert!(
            messages[0].contains("writer's record cannot be read as string"),
            "{messages:?}"
        );
    }

    #[test]
    fn transitive_checks_every_version_plain_checks_latest() {
        // v1 lacks `b`, v2 adds `b` with a default, v3 drops the default again.
        let history = [
            record(r#"{"name":"a","type":"string"}"#),
            record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":1}"#),
        ];
        // v3 reads `b` without default: fine for v2 data (has b), not for v1 data.
        let v3 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert!(check(CompatibilityLevel::Backward, &v3, &versions(&history)).is_empty());
        let messages = check(
            CompatibilityLevel::BackwardTransitive,
            &v3,
            &versions(&history),
        );
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("version 1"), "{messages:?}");
    }

    #[test]
    fn enum_losing_a_symbol_is_not_backward_compatible() {
        let enum_schema = |symbols: &str| {
            Schema::parse_str(&format!(
                r#"{{"type":"enum","name":"Color","symbols":[{symbols}]}}"#
            ))
            .unwrap()
        };
        let v1 = [enum_schema(r#""RED","GREEN""#)];
        let fewer = enum_schema(r#""RED""#);
        assert!(!check(CompatibilityLevel::Backward, &fewer, &versions(&v1)).is_empty());
        let more = enum_schema(r#""RED","GREEN","BLUE""#);
        assert!(check(CompatibilityLevel::Backward, &more, &versions(&v1)).is_empty());
    }

    #[test]
    fn nothing_registered_is_always_compatible() {
        let schema = record(r#"{"name":"a","type":"string"}"#);
        for level in CompatibilityLevel::ALL {
            assert!(check(level, &schema, &[]).is_empty());
        }
    }
}
