//! `docs/asyncapi.yaml`: the catalogue as an AsyncAPI 3.0 document, for teams that publish to
//! or consume from echo. Every events and commands topic is a channel with the records it
//! carries; every record a message with its Avro schema (the `.avsc` itself), its key and its
//! headers; every processor's reads and writes are operations, and so are a client's (what it
//! may send and what it reads back). Derived from avro/ and topics/, never written by hand.

use serde_json::{json, Map, Value};

use crate::events;
use crate::flow::CLIENT;
use crate::record::RecordInfo;
use crate::topics::{Catalogue, TopicKind, TopicSpec};

/// The Avro schema format AsyncAPI names payloads with.
const AVRO_FORMAT: &str = "application/vnd.apache.avro;version=1.9.0";

/// The AsyncAPI document of `catalogue`, as JSON (which is also YAML).
pub fn asyncapi_document(catalogue: &Catalogue) -> Value {
    let carried: Vec<&TopicSpec> = catalogue
        .topics
        .iter()
        .filter(|t| matches!(t.kind, TopicKind::Events | TopicKind::Commands))
        .collect();
    let mut channels = Map::new();
    for topic in &carried {
        channels.insert(channel_id(&topic.name), channel(catalogue, topic));
    }
    let mut operations = Map::new();
    for p in &catalogue.processors {
        for (action, topics) in [("receive", &p.consumes), ("send", &p.produces)] {
            for topic in topics {
                operations.insert(
                    format!("{}.{action}.{}", p.name, channel_id(topic)),
                    operation(
                        action,
                        topic,
                        &format!("Processor `{}`: {}", p.name, p.description),
                        None,
                    ),
                );
            }
        }
    }
    // What a client may do: publish what the catalogue's `[client]` emits, and read what it
    // handles, on the topics that carry them.
    for (action, types, what) in [
        (
            "send",
            &catalogue.client.emits,
            "A client: publishes under the resource id as key (murmur2 partitioner).",
        ),
        (
            "receive",
            &catalogue.client.handles,
            "A client or downstream consumer: reads its resources' URL and outcome.",
        ),
    ] {
        for topic in &carried {
            let picked: Vec<&str> = topic
                .carries
                .iter()
                .filter(|t| types.contains(t))
                .map(String::as_str)
                .collect();
            if !picked.is_empty() {
                operations.insert(
                    format!("{CLIENT}.{action}.{}", channel_id(&topic.name)),
                    operation(action, &topic.name, what, Some(&picked)),
                );
            }
        }
    }
    let mut messages = Map::new();
    for info in events::all() {
        messages.insert(message_id(info.type_name), message(catalogue, info));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "echo",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Audio in, transcripts and reports out, through Kafka. Every record is \
                Avro in the Confluent wire format (magic byte, schema id, body), registered in a \
                Confluent-compatible Schema Registry under `<topic>-<record full name>`, with \
                CloudEvents headers (binary mode) and W3C `traceparent`. Generated from avro/ and \
                topics/topics.toml.",
        },
        "defaultContentType": "application/avro",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local stack of `echoctl dev up`; a deployment prefixes every topic name with its `kafka.topic_prefix`.",
            },
            "local-sasl": {
                "host": "127.0.0.1:9192",
                "protocol": "kafka",
                "description": "The local stack's listener that signs clients in and holds them to their ACLs, as a production cluster does (docs/CLIENTS.md, k8s/README.md).",
                "security": [{ "$ref": "#/components/securitySchemes/scram" }],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": { "CloudEventHeaders": headers_schema() },
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "SASL SCRAM-SHA-512: each team, and each of echo's processors, signs in as its own user, whose ACLs name the topics, groups and transactional ids it may use.",
                }
            },
        },
    })
}

/// The id of a topic's channel: its name without dots.
fn channel_id(topic: &str) -> String {
    topic.replace('.', "_")
}

/// The id of a record type's message.
fn message_id(type_name: &str) -> String {
    type_name.replace('.', "_")
}

fn channel(catalogue: &Catalogue, topic: &TopicSpec) -> Value {
    let messages: Map<String, Value> = topic
        .carries
        .iter()
        .map(|t| {
            (
                message_id(t),
                json!({ "$ref": format!("#/components/messages/{}", message_id(t)) }),
            )
        })
        .collect();
    json!({
        "address": topic.name,
        "title": topic.name,
        "description": format!("{} Kind: {}; context: {}; key: `{}`.", topic.description,
            match topic.kind { TopicKind::Commands => "commands", _ => "events" }, topic.context, topic.key),
        "messages": messages,
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": catalogue.partitions_of(topic),
                "topicConfiguration": {
                    "cleanup.policy": ["delete"],
                    "retention.ms": catalogue.defaults.retention_ms,
                },
                "bindingVersion": "0.5.0",
            }
        },
    })
}

/// An operation on `topic`'s channel: every message it carries, or only `only`.
fn operation(action: &str, topic: &str, description: &str, only: Option<&[&str]>) -> Value {
    let channel = channel_id(topic);
    let carried: Vec<Value> = match only {
        Some(types) => types
            .iter()
            .map(|t| json!({ "$ref": format!("#/channels/{channel}/messages/{}", message_id(t)) }))
            .collect(),
        None => Vec::new(),
    };
    let mut op = json!({
        "action": action,
        "channel": { "$ref": format!("#/channels/{channel}") },
        "description": description,
    });
    if only.is_some() {
        op["messages"] = Value::Array(carried);
    }
    op
}

fn message(catalogue: &Catalogue, info: &RecordInfo) -> Value {
    let annotations = info.annotations().ok();
    let text = |pick: fn(&events::Annotations) -> &str| {
        annotations
            .as_ref()
            .map(|a| pick(a).to_string())
            .unwrap_or_default()
    };
    let key = catalogue
        .topic_of(info.type_name)
        .map(|t| t.key.clone())
        .unwrap_or_default();
    let key_doc = match key.as_str() {
        "chunk_id" => {
            "`<job_id>:<chunk_index>` from the payload, placed on the job's run of partitions."
        }
        _ => "The resource id (`metadata.correlation_id`), placed by the murmur2 partitioner.",
    };
    let schema: Value = serde_json::from_str(info.avsc).unwrap_or(Value::Null);
    json!({
        "name": info.type_name,
        "title": info.type_name,
        "summary": text(|a| a.doc.as_str()),
        "description": format!("Producers: {}. Consumers: {}. Trigger: {} Failure path: {}",
            catalogue.producers_of(info.type_name).join(", "),
            catalogue.consumers_of(info.type_name).join(", "),
            text(|a| a.trigger.as_str()), text(|a| a.failure_path.as_str())),
        "contentType": "application/avro",
        "headers": { "$ref": "#/components/schemas/CloudEventHeaders" },
        "payload": { "schemaFormat": AVRO_FORMAT, "schema": schema },
        "bindings": {
            "kafka": {
                "key": { "type": "string", "description": key_doc },
                "bindingVersion": "0.5.0",
            }
        },
    })
}

/// The headers every record carries.
fn headers_schema() -> Value {
    let text = |d: &str| json!({ "type": "string", "description": d });
    json!({
        "type": "object",
        "description": "CloudEvents Kafka binding (binary mode) and W3C trace context.",
        "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "content-type"],
        "properties": {
            "ce_specversion": text("Always 1.0."),
            "ce_id": text("The record's event id (metadata.event_id)."),
            "ce_type": text("The dotted type name, such as upload.requested."),
            "ce_source": text("/echo/<producer>."),
            "ce_time": text("When the fact happened, RFC 3339."),
            "ce_subject": text("The resource id."),
            "ce_correlationid": text("The resource id: the chain the record belongs to."),
            "ce_causationid": text("The event id of the record that caused this one."),
            "content-type": text("application/avro."),
            "traceparent": text("W3C trace context: the resource's trace and the span that produced the record."),
        },
    })
}
