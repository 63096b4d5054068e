//! Operators' tools: the pure parts of `echoctl dlq` (grouping, header stripping, filter
//! matching, where a redrive sends a record, the markers of redriven records), kept apart
//! from the Kafka I/O so they are tested without a broker. docs/OPERATIONS.md describes the
//! commands and the exactly-once design.

use std::collections::BTreeMap;

use echo_catalog::ProcessorSpec;

use crate::headers::{echo, HeaderList};

/// Transactional id of `echoctl dlq redrive` for a processor (before the env prefix). One
/// fixed id per processor: a redrive that starts fences any earlier one still running, so two
/// runs can never both re-publish a record.
pub fn redrive_transactional_id(processor: &str) -> String {
    format!("echo.{processor}.dlq-redrive")
}

/// Key of the marker recording that the DLQ record at `partition`/`offset` was redriven.
pub fn marker_key(partition: i32, offset: i64) -> String {
    format!("{partition}:{offset}")
}

/// The DLQ position a marker key names; `None` for a key this tool did not write.
pub fn parse_marker_key(key: &str) -> Option<(i32, i64)> {
    let (partition, offset) = key.split_once(':')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// Where a redrive re-publishes a DLQ record: the topic and partition it was first read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveTarget {
    /// Catalogue name of the original topic (one of the processor's sources).
    pub topic: String,
    /// The original partition; keeping it keeps the record with the other records of its
    /// key (co-partitioning) and honours explicitly partitioned commands.
    pub partition: i32,
}

/// The target of a DLQ record of `processor`, from its `echo_original_*` headers. Refuses a
/// topic the processor does not read, and a partition its sources do not have (`partitions`),
/// so a hand-made or damaged record cannot be sent anywhere else.
pub fn redrive_target(
    headers: &HeaderList,
    processor: &ProcessorSpec,
    partitions: i32,
) -> Result<RedriveTarget, String> {
    if let Some(cut) = headers.get(echo::TRUNCATED) {
        return Err(format!("the dead letter is not the whole record ({cut})"));
    }
    let topic = headers
        .get(echo::ORIGINAL_TOPIC)
        .ok_or_else(|| format!("no {} header", echo::ORIGINAL_TOPIC))?;
    if !processor.consumes.iter().any(|t| t == topic) {
        return Err(format!(
            "original topic {topic} is not a source of {}",
            processor.name
        ));
    }
    let partition = headers
        .get(echo::ORIGINAL_PARTITION)
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| (0..partitions).contains(p))
        .ok_or_else(|| {
            format!(
                "{} is missing or not one of {partitions} partitions",
                echo::ORIGINAL_PARTITION
            )
        })?;
    Ok(RedriveTarget {
        topic: topic.to_string(),
        partition,
    })
}

/// True for headers echo's runtime adds on retry/DLQ (`echo_retry_*`, `echo_error_*`,
/// `echo_original_*`, `echo_processor`, the value's size and hash), which a redrive must drop.
pub fn is_echo_error_header(name: &str) -> bool {
    name == echo::ATTEMPT
        || name == echo::DUE_AT
        || name == echo::PROCESSOR
        || name == echo::VALUE_BYTES
        || name == echo::VALUE_SHA256
        || name.starts_with("echo_error_")
        || name.starts_with("echo_original_")
        || name.starts_with("echo_retry_")
}

/// The headers a redriven record carries: the original ones, minus echo's error headers.
pub fn strip_error_headers(headers: &HeaderList) -> HeaderList {
    HeaderList(
        headers
            .0
            .iter()
            .filter(|(k, _)| !is_echo_error_header(k))
            .cloned()
            .collect(),
    )
}

/// A redrive filter: `--class` and `--type` (CloudEvents `ce_type`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `echo_error_class` to match.
    pub class: Option<String>,
    /// `ce_type` to match.
    pub record_type: Option<String>,
}

impl Filter {
    /// True when no criterion is set (every record matches).
    pub fn is_empty(&self) -> bool {
        self.class.is_none() && self.record_type.is_none()
    }

    /// Whether a DLQ record with these headers matches.
    pub fn matches(&self, headers: &HeaderList) -> bool {
        let class_ok = self
            .class
            .as_deref()
            .is_none_or(|c| headers.get(echo::ERROR_CLASS) == Some(c));
        let type_ok = self
            .record_type
            .as_deref()
            .is_none_or(|t| headers.get(crate::headers::ce::TYPE) == Some(t));
        class_ok && type_ok
    }
}

/// Key of a `dlq list` group: error class and original topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// `echo_error_class`, or `?` when missing.
    pub class: String,
    /// `echo_original_topic`, or `?` when missing.
    pub original_topic: String,
}

/// Counts of a group: all records and those already redriven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCount {
    /// Records in the DLQ.
    pub total: u64,
    /// Of which already redriven.
    pub redriven: u64,
}

/// Groups DLQ records (headers, already-redriven flag) by class and original topic.
pub fn group<'a>(
    records: impl IntoIterator<Item = (&'a HeaderList, bool)>,
) -> BTreeMap<GroupKey, GroupCount> {
    let mut out: BTreeMap<GroupKey, GroupCount> = BTreeMap::new();
    for (headers, redriven) in records {
        let key = GroupKey {
            class: headers.get(echo::ERROR_CLASS).unwrap_or("?").to_string(),
            original_topic: headers.get(echo::ORIGINAL_TOPIC).unwrap_or("?").to_string(),
        };
        let count = out.entry(key).or_default();
        count.total += 1;
        if redriven {
            count.redriven += 1;
        }
    }
    out
}

/// Hex preview of the first `max` bytes (for undecodable records).
pub fn hex_preview(bytes: &[u8], max: usize) -> String {
    let mut s: String = bytes
        .iter()
        .take(max)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    if bytes.len() > max {
        s.push_str(" …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        HeaderList(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn strips_only_echo_error_headers() {
        let headers = h(&[
            ("ce_type", "upload.requested"),
            ("traceparent", "00-x"),
            (echo::ERROR_CLASS, "permanent"),
            (echo::ERROR_MESSAGE, "boom"),
            (echo::ORIGINAL_TOPIC, "upload.requests"),
            (echo::ORIGINAL_PARTITION, "0"),
            (echo::ORIGINAL_OFFSET, "3"),
            (echo::ATTEMPT, "1"),
            (echo::DUE_AT, "5"),
            (echo::PROCESSOR, "upload"),
        ]);
        assert_eq!(
            strip_error_headers(&headers),
            h(&[("ce_type", "upload.requested"), ("traceparent", "00-x")])
        );
    }

    #[test]
    fn filter_matching() {
        let r = h(&[
            ("ce_type", "upload.requested"),
            (echo::ERROR_CLASS, "permanent"),
        ]);
        assert!(Filter::default().matches(&r));
        assert!(Filter {
            class: Some("permanent".into()),
            record_type: None
        }
        .matches(&r));
        assert!(!Filter {
            class: Some("undecodable".into()),
            record_type: None
        }
        .matches(&r));
        assert!(Filter {
            class: Some("permanent".into()),
            record_type: Some("upload.requested".into())
        }
        .matches(&r));
        assert!(!Filter {
            class: None,
            record_type: Some("x".into())
        }
        .matches(&r));
    }

    #[test]
    fn groups_by_class_and_topic() {
        let a = h(&[
            (echo::ERROR_CLASS, "permanent"),
            (echo::ORIGINAL_TOPIC, "t"),
        ]);
        let b = h(&[
            (echo::ERROR_CLASS, "undecodable"),
            (echo::ORIGINAL_TOPIC, "t"),
        ]);
        let g = group([(&a, false), (&a, true), (&b, false)]);
        let key = |c: &str| GroupKey {
            class: c.into(),
            original_topic: "t".into(),
        };
        assert_eq!(
            g[&key("permanent")],
            GroupCount {
                total: 2,
                redriven: 1
            }
        );
        assert_eq!(
            g[&key("undecodable")],
            GroupCount {
                total: 1,
                redriven: 0
            }
        );
        assert_eq!(hex_preview(&[0xde, 0xad, 0xbe], 2), "de ad …");
    }

    #[test]
    fn marker_keys_round_trip() {
        assert_eq!(marker_key(3, 41), "3:41");
        assert_eq!(parse_marker_key("3:41"), Some((3, 41)));
        assert_eq!(parse_marker_key("3"), None);
        assert_eq!(parse_marker_key("x:1"), None);
        assert_eq!(
            redrive_transactional_id("upload"),
            "echo.upload.dlq-redrive"
        );
    }

    #[test]
    fn redrive_targets_only_the_processors_own_sources() {
        let catalogue = echo_catalog::Catalogue::load().unwrap();
        let upload = catalogue.processor("upload").unwrap();
        let from = |topic: &str, partition: &str| {
            h(&[
                (echo::ORIGINAL_TOPIC, topic),
                (echo::ORIGINAL_PARTITION, partition),
            ])
        };
        assert_eq!(
            redrive_target(&from("echo.upload.commands", "5"), upload, 6),
            Ok(RedriveTarget {
                topic: "echo.upload.commands".into(),
                partition: 5
            })
        );
        assert!(redrive_target(&from("echo.upload.events", "0"), upload, 6).is_err());
        let mut cut = from("echo.upload.commands", "5");
        cut.set(echo::TRUNCATED, "value: kept 10 of 20 bytes");
        let refused = redrive_target(&cut, upload, 6).unwrap_err();
        assert!(refused.contains("not the whole record"), "{refused}");
        assert!(redrive_target(&from("echo.upload.commands", "6"), upload, 6).is_err());
        assert!(redrive_target(&from("echo.upload.commands", "-1"), upload, 6).is_err());
        assert!(redrive_target(&h(&[]), upload, 6).is_err());
    }
}
