//! Hostile clients: writes need the writer's credentials, oversized and deeply nested
//! schemas are refused before parsing, and two instances cannot share one data file.

mod common;

use common::{scratch_dir, test_config, user_v1, TestRegistry, PASSWORD, WRITER};
use echo_schema_registry::{Config, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn assert_error(result: &(StatusCode, Value), status: StatusCode, code: u64) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error_code"], code, "{}", result.1);
    assert!(result.1["message"].is_string(), "{}", result.1);
}

/// An Avro schema of `levels` arrays nested in one another, around a string.
fn nested_arrays(levels: usize) -> String {
    let mut text = r#""string""#.to_owned();
    for _ in 0..levels {
        text = format!(r#"{{"type":"array","items":{text}}}"#);
    }
    text
}

#[tokio::test]
async fn every_write_needs_the_writers_credentials_and_reads_stay_open() {
    let registry = TestRegistry::start().await;
    let client = &registry.client;
    let schema = json!({ "schema": user_v1() }).to_string();
    let level = json!({ "compatibility": "NONE" }).to_string();
    let writes = || {
        [
            client
                .post(registry.url("/subjects/users-value/versions"))
                .body(schema.clone()),
            client.put(registry.url("/config")).body(level.clone()),
            client
                .put(registry.url("/config/users-value"))
                .body(level.clone()),
            client.delete(registry.url("/config/users-value")),
            client.delete(registry.url("/subjects/users-value")),
            client.delete(registry.url("/subjects/users-value/versions/1?permanent=true")),
        ]
    };
    for write in writes() {
        assert_error(
            &registry.send_as(write).await,
            StatusCode::UNAUTHORIZED,
            40101,
        );
    }
    for write in writes() {
        let wrong = write.basic_auth(WRITER, Some("not-the-password"));
        assert_error(
            &registry.send_as(wrong).await,
            StatusCode::UNAUTHORIZED,
            40101,
        );
    }
    for write in writes() {
        let stranger = write.basic_auth("someone-else", Some(PASSWORD));
        assert_error(
            &registry.send_as(stranger).await,
            StatusCode::UNAUTHORIZED,
            40101,
        );
    }
    // Nothing was written.
    assert_eq!(registry.get("/subjects").await, (StatusCode::OK, json!([])));
    assert_eq!(
        registry.get("/config").await.1["compatibilityLevel"],
        "BACKWARD"
    );

    // The writer may do each of them.
    for write in writes() {
        let (status, body) = registry.send(write).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Reads need nothing, including the POSTs that only look.
    let id = registry.register("users-value", &user_v1()).await;
    let anonymous = [
        client.get(registry.url("/subjects")),
        client.get(registry.url("/subjects/users-value/versions/latest")),
        client.get(registry.url(&format!("/schemas/ids/{id}"))),
        client.get(registry.url("/config")),
        client
            .post(registry.url("/subjects/users-value"))
            .body(schema.clone()),
        client
            .post(registry.url("/compatibility/subjects/users-value/versions/latest?verbose=true"))
            .body(schema.clone()),
    ];
    for read in anonymous {
        let (status, body) = registry.send_as(read).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    registry.stop().await;
}

#[tokio::test]
async fn a_registry_without_a_writer_refuses_every_write() {
    let registry = TestRegistry::start_with(Config {
        port: 0,
        ..Config::default()
    })
    .await;
    let register = registry
        .post(
            "/subjects/users-value/versions",
            &json!({ "schema": user_v1() }),
        )
        .await;
    assert_error(&register, StatusCode::UNAUTHORIZED, 40101);
    registry.stop().await;
}

#[tokio::test]
async fn an_oversized_schema_is_refused() {
    let registry = TestRegistry::start().await;
    let padded = json!({
        "type": "record",
        "name": "Big",
        "doc": "x".repeat(300 * 1024),
        "fields": [{ "name": "id", "type": "string" }]
    });
    let body = json!({ "schema": padded.to_string() });
    for path in [
        "/subjects/big/versions",
        "/subjects/big",
        "/compatibility/subjects/big/versions/latest",
    ] {
        assert_error(
            &registry.post(path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
    }
    assert_eq!(registry.get("/subjects").await, (StatusCode::OK, json!([])));
    registry.stop().await;
}

#[tokio::test]
async fn deeply_nested_schemas_are_refused_and_the_server_survives_a_depth_bomb() {
    let registry = TestRegistry::start().await;
    // 64 levels is the limit; echo's own schemas are under ten.
    registry.register("deep", &nested_arrays(64)).await;
    for levels in [65, 120, 10_000] {
        assert_error(
            &registry
                .post(
                    "/subjects/deeper/versions",
                    &json!({ "schema": nested_arrays(levels) }),
                )
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
    }
    // Bare brackets, not even an Avro schema: refused before any parser sees them.
    assert_error(
        &registry
            .post(
                "/subjects/deeper/versions",
                &json!({ "schema": "[".repeat(100_000) }),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
    );
    assert_eq!(
        registry.get("/subjects").await,
        (StatusCode::OK, json!(["deep"]))
    );
    registry.stop().await;
}

#[tokio::test]
async fn a_second_instance_on_the_same_data_file_does_not_start() {
    let dir = scratch_dir("lock");
    let data_file = dir.join("registry.json");
    let first = TestRegistry::start_with_file(&data_file).await;
    first.register("users-value", &user_v1()).await;
    let second = Config {
        data_file: Some(data_file.clone()),
        ..test_config()
    };
    let error = match Server::bind(&second).await {
        Ok(_) => panic!("two registries on one data file"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("registry.json"), "{error}");
    assert!(
        error.contains(&format!("process {}", std::process::id())),
        "{error}"
    );
    // The first one is unharmed, and once it stops the file is free again.
    assert_eq!(
        first.get("/subjects").await,
        (StatusCode::OK, json!(["users-value"]))
    );
    first.stop().await;
    let again = TestRegistry::start_with_file(&data_file).await;
    assert_eq!(
        again.get("/subjects").await,
        (StatusCode::OK, json!(["users-value"]))
    );
    again.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
