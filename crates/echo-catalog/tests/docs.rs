//! `docs/EVENTS.md` is generated from the catalogue; this test keeps it in sync.

use std::path::Path;

use echo_catalog::docs::{flow_tree_types, FLOW_TREE};
use echo_catalog::{events, events_markdown, Catalogue};

#[test]
fn events_md_is_generated_from_the_catalogue() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/EVENTS.md");
    let expected = events_markdown(&Catalogue::load().unwrap());
    if std::env::var_os("ECHO_UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .map_or(
                actual.lines().count().min(expected.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "docs/EVENTS.md is out of date with avro/ and topics/topics.toml (first difference at \
             line {line}).\nRegenerate it with: ECHO_UPDATE_DOCS=1 cargo test -p echo-catalog --test docs"
        );
    }
}

#[test]
fn flow_tree_names_only_catalogued_types() {
    let types = flow_tree_types();
    assert_eq!(
        types.len(),
        FLOW_TREE.lines().count(),
        "a tree line without a type name"
    );
    for ty in types {
        assert!(
            events::info(ty).is_some(),
            "{ty} in the flow tree is not catalogued"
        );
    }
}

#[test]
fn generated_docs_have_no_errors_and_cover_every_type() {
    let md = events_markdown(&Catalogue::load().unwrap());
    assert!(!md.contains("(error:"), "{md}");
    assert!(!md.contains("(none)"), "a type without a topic");
    for info in events::all() {
        assert!(
            md.contains(&format!("### `{}`", info.type_name)),
            "{}",
            info.type_name
        );
    }
    for topic in &Catalogue::load().unwrap().topics {
        assert!(
            md.contains(&format!("| `{}` |", topic.name)),
            "{}",
            topic.name
        );
    }
}
