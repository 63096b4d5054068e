//! `--data-file`: state survives a restart; without it, it does not.

mod common;

use common::{scratch_dir, user_schema, user_v1, user_v2, TestRegistry};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn restart_with_same_data_file_keeps_ids_versions_and_config() {
    let dir = scratch_dir("persistence");
    let data_file = dir.join("registry.json");

    let registry = TestRegistry::start_with_file(&data_file).await;
    assert_eq!(registry.register("users-value", &user_v1()).await, 1);
    assert_eq!(registry.register("users-value", &user_v2()).await, 2);
    let orders = user_schema(r#"{"name":"order","type":"long"}"#);
    assert_eq!(registry.register("orders-value", &orders).await, 3);
    assert_eq!(registry.register("orders-copy", &user_v1()).await, 1);
    assert_eq!(
        registry
            .put("/config/orders-value", &json!({ "compatibility": "NONE" }))
            .await
            .0,
        StatusCode::OK
    );
    registry.stop().await;

    assert!(data_file.exists());
    let mut leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    leftovers.sort();
    // The data file and its lock file (kept: removing it could race a starting instance).
    assert_eq!(leftovers, ["registry.json", "registry.json.lock"]);

    let registry = TestRegistry::start_with_file(&data_file).await;
    assert_eq!(
        registry.get("/subjects").await,
        (
            StatusCode::OK,
            json!(["orders-copy", "orders-value", "users-value"])
        )
    );
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_eq!(
        registry.get("/subjects/users-value/versions/latest").await,
        (
            StatusCode::OK,
            json!({ "subject": "users-value", "version": 2, "id": 2, "schema": user_v2() })
        )
    );
    assert_eq!(
        registry.get("/schemas/ids/3").await,
        (StatusCode::OK, json!({ "schema": orders }))
    );
    // Re-registering returns the persisted id; a new schema gets the next id.
    assert_eq!(registry.register("users-value", &user_v1()).await, 1);
    assert_eq!(
        registry.get("/config/orders-value").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "NONE" }))
    );
    let v3 = user_schema(
        r#"{"name":"id","type":"string"},{"name":"age","type":"int","default":0},{"name":"email","type":["null","string"],"default":null}"#,
    );
    assert_eq!(registry.register("users-value", &v3).await, 4);
    registry.stop().await;

    // And once more, to see the post-restart write persisted as well.
    let registry = TestRegistry::start_with_file(&data_file).await;
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1, 2, 3]))
    );
    registry.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn corrupt_data_file_refuses_to_start() {
    let dir = scratch_dir("corrupt");
    let data_file = dir.join("registry.json");
    std::fs::write(&data_file, b"{ this is not the registry").unwrap();
    let config = echo_schema_registry::Config {
        port: 0,
        data_file: Some(data_file.clone()),
        ..Default::default()
    };
    let error = match echo_schema_registry::Server::bind(&config).await {
        Ok(_) => panic!("a corrupt data file must not be overwritten"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("registry.json"), "{error}");
    // Untouched.
    assert_eq!(
        std::fs::read(&data_file).unwrap(),
        b"{ this is not the registry"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn without_data_file_state_is_memory_only() {
    let registry = TestRegistry::start().await;
    registry.register("users-value", &user_v1()).await;
    registry.stop().await;
    let registry = TestRegistry::start().await;
    assert_eq!(registry.get("/subjects").await, (StatusCode::OK, json!([])));
    registry.stop().await;
}
