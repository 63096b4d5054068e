//! The topology, printable like Kafka Streams' `Topology#describe()`: for every processor its
//! sources, state store, sinks, retry tiers and DLQ, all derived from topics/topics.toml.

use std::fmt::Write;

use anyhow::Result;
use echo_catalog::topics::{changelog_topic, dlq_topic, retry_topic};
use echo_catalog::Catalogue;

/// Renders the topology of the processors called `names` (those a binary runs, in its
/// order) as indented text; fails on a name the catalogue does not declare.
pub fn describe(catalogue: &Catalogue, names: &[&str]) -> Result<String> {
    let mut out = String::new();
    for name in names {
        let p = catalogue.processor(name)?;
        let _ = writeln!(
            out,
            "Processor: {} (context {}, consumer group echo.{})",
            p.name, p.context, p.name
        );
        let _ = writeln!(out, "  {}", p.description);
        let _ = writeln!(out, "  Handles: {}", p.handles.join(", "));
        let _ = writeln!(out, "  Emits: {}", p.emits.join(", "));
        for t in &p.consumes {
            let carries = catalogue
                .topic(t)
                .map(|s| s.carries.join(", "))
                .unwrap_or_default();
            let _ = writeln!(out, "  Source: {t} [{carries}]");
        }
        let _ = writeln!(
            out,
            "  State store: {} (compacted changelog; handler state, dedup ids, timers)",
            changelog_topic(&p.name)
        );
        for t in &p.produces {
            let carries = catalogue
                .topic(t)
                .map(|s| s.carries.join(", "))
                .unwrap_or_default();
            let _ = writeln!(out, "  Sink: {t} [{carries}]");
        }
        for (i, backoff) in p.retry_backoff_ms.iter().enumerate() {
            let _ = writeln!(
                out,
                "  Retry tier {}: {} (after {backoff} ms)",
                i + 1,
                retry_topic(&p.name, i + 1)
            );
        }
        let _ = writeln!(out, "  Dead letters: {}", dlq_topic(&p.name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_names_sources_store_sinks_and_dlq() {
        let catalogue = Catalogue::load().unwrap();
        let names: Vec<&str> = catalogue
            .processors
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let text = describe(&catalogue, &names).unwrap();
        for needle in [
            "Processor: upload",
            "Source: echo.upload.requests [upload.requested]",
            "State store: echo.upload.changelog",
            "Sink: echo.upload.events",
            "Retry tier 1: echo.upload.retry.1",
            "Dead letters: echo.upload.dlq",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
