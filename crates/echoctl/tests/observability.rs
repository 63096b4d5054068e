//! Traces and metrics in real stores: Jaeger and Prometheus as `echoctl dev up
//! --observability` runs them (the test command starts them; a test fails, never skips, when
//! they are down), and a pipeline exporting its spans over OTLP and serving its metrics on the
//! port Prometheus scrapes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use echo_tests::pipeline::{speak, submit, Pipeline};
use echo_tests::TestEnv;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// Where the local stack's Jaeger answers queries and takes OTLP, and where its Prometheus
/// answers (the stack scripts' defaults).
const JAEGER_QUERY: &str = "http://127.0.0.1:16686";
const JAEGER_OTLP: &str = "http://127.0.0.1:4318";
const PROMETHEUS: &str = "http://127.0.0.1:9090";
/// The metrics address Prometheus scrapes (`endpoints.listen`'s default).
const SCRAPED: &str = "127.0.0.1:9464";

async fn get_json(url: &str) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// The trace `trace_id` from Jaeger's query API, once it holds spans of every one of
/// `processors`.
async fn trace_of_every_processor(trace_id: &str, processors: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let found = get_json(&format!("{JAEGER_QUERY}/api/traces/{trace_id}")).await;
        let trace = found.as_ref().and_then(|d| d["data"].get(0)).cloned();
        let services: HashSet<String> = trace
            .as_ref()
            .and_then(|t| t["processes"].as_object())
            .map(|p| {
                p.values()
                    .filter_map(|v| v["serviceName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        // Each processor exports its spans in its own batches: the trace is whole once every
        // processor is in it, the last hop's span (the resource processor reading
        // `transcription.completed`) has arrived, and no span waits for its parent.
        let spans = trace
            .as_ref()
            .and_then(|t| t["spans"].as_array())
            .cloned()
            .unwrap_or_default();
        let ids: HashSet<&str> = spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
        let last_hop = spans
            .iter()
            .any(|s| s["operationName"] == "process transcription.completed");
        // The client's records have parents no exported span produced.
        let from_client = |span: &Value| {
            span["tags"].as_array().is_some_and(|tags| {
                tags.iter().any(|t| {
                    t["key"] == "echo.event_type"
                        && matches!(
                            t["value"].as_str(),
                            Some("upload.requested" | "upload.finalize")
                        )
                })
            })
        };
        let orphans = spans
            .iter()
            .filter(|s| !from_client(s))
            .filter_map(|s| s["references"].as_array()?.first()?["spanID"].as_str())
            .filter(|parent| !ids.contains(parent))
            .count();
        if processors.iter().all(|p| services.contains(*p)) && last_hop && orphans == 0 {
            return trace.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no whole trace {trace_id} in Jaeger: services {services:?}, last hop {last_hop}, \
             {orphans} spans without their parent"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_all_eight_processors_and_prometheus_scrapes_them() {
    assert!(
        get_json(&format!("{JAEGER_QUERY}/api/services"))
            .await
            .is_some(),
        "Jaeger is not up: run `echoctl dev up --observability` (the test command does)"
    );
    let env = TestEnv::new("observability").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(
        dir.path(),
        "speech.wav",
        "Please call Stella and ask her to bring these things.",
    )
    .unwrap();
    let settings = [
        ("ECHO_TRACING__OTLP_ENDPOINT", JAEGER_OTLP),
        ("ECHO_ENDPOINTS__LISTEN", SCRAPED),
    ];
    let _pipeline = Pipeline::start(Path::new(BIN), &env, 1, &settings).unwrap();
    let report = submit(Path::new(BIN), &env, &wav, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let resource = report["resource_id"].as_str().unwrap();

    // One trace per resource: its id is the resource id's hex digits.
    let trace_id = resource.replace('-', "");
    let processors = env.processor_names();
    assert_eq!(processors.len(), 8);
    let trace = trace_of_every_processor(&trace_id, &processors).await;
    let services: HashMap<&str, &str> = trace["processes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v["serviceName"].as_str().unwrap()))
        .collect();
    let spans = trace["spans"].as_array().unwrap();
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["spanID"].as_str().unwrap(), s))
        .collect();
    let tag = |span: &Value, key: &str| -> Option<Value> {
        span["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .map(|t| t["value"].clone())
    };
    let service_of = |span: &Value| services[span["processID"].as_str().unwrap()];
    // Each processor's span of a record carries the messaging attributes.
    for span in spans.iter().filter(|s| {
        s["operationName"]
            .as_str()
            .is_some_and(|n| n.starts_with("process "))
    }) {
        assert_eq!(
            tag(span, "messaging.system"),
            Some(Value::from("kafka")),
            "{span:#}"
        );
        for key in [
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
        ] {
            assert!(tag(span, key).is_some(), "{key} missing: {span:#}");
        }
        assert_eq!(tag(span, "echo.resource_id"), Some(Value::from(resource)));
    }
    // Spans hang under the span that produced their record: only the client's records (which
    // no exported span produced) start the tree.
    let parent_of = |span: &Value| -> Option<&Value> {
        let id = span["references"].as_array()?.first()?["spanID"].as_str()?;
        by_id.get(id).copied()
    };
    for span in spans {
        if parent_of(span).is_none() {
            let record = tag(span, "echo.event_type");
            assert!(
                matches!(
                    record.as_ref().and_then(Value::as_str),
                    Some("upload.requested" | "upload.finalize")
                ),
                "a span without its parent in the trace: {span:#}"
            );
        }
    }
    // The request's tenant was asked for room by the upload processor.
    let reserve = spans
        .iter()
        .find(|s| s["operationName"] == "process quota.reserve")
        .expect("the quota processor's span");
    assert_eq!(service_of(reserve), "quota");
    assert_eq!(service_of(parent_of(reserve).unwrap()), "upload");
    // The clip is one chunk: the express worker transcribed it, the pool passed over it.
    let chunk = spans
        .iter()
        .find(|s| {
            s["operationName"] == "process chunk.process" && service_of(s) == "express-chunk-worker"
        })
        .expect("the express worker's span");
    // The job aggregator dispatched the chunk, as it handled the job's creation.
    assert_eq!(service_of(parent_of(chunk).unwrap()), "job-aggregator");
    let ready = spans
        .iter()
        .find(|s| s["operationName"] == "process transcription.completed")
        .expect("the resource processor's span of the transcript");
    assert_eq!(service_of(ready), "resource");
    assert_eq!(service_of(parent_of(ready).unwrap()), "transcription");

    // Prometheus scrapes the pipeline's metrics.
    let query = format!(
        "{PROMETHEUS}/api/v1/query?query=echo_records_total{{processor=\"upload\",type=\"upload.requested\",outcome=\"handled\"}}"
    );
    let started = Instant::now();
    let value = loop {
        let found = get_json(&query).await;
        let value = found
            .as_ref()
            .and_then(|d| d["data"]["result"].get(0))
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok());
        if value.is_some_and(|v| v >= 1.0) || started.elapsed() > Duration::from_secs(30) {
            break value;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        value.is_some_and(|v| v >= 1.0),
        "Prometheus has {value:?} requests handled"
    );
}
