//! The Confluent REST API over real HTTP: registration, reads, lookups, compatibility,
//! config, deletes and error shapes.

mod common;

use common::{user_schema, user_v1, user_v2, TestRegistry, PASSWORD, WRITER};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Asserts a Confluent error body with `status` and `error_code`.
fn assert_error(result: &(StatusCode, Value), status: StatusCode, code: u64) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error_code"], json!(code), "{}", result.1);
    assert!(result.1["message"].is_string(), "{}", result.1);
}

#[tokio::test]
async fn register_read_lookup_and_list() {
    let registry = TestRegistry::start().await;
    assert_eq!(registry.get("/").await, (StatusCode::OK, json!({})));
    assert_eq!(registry.get("/subjects").await, (StatusCode::OK, json!([])));

    let v1 = user_v1();
    let id = registry.register("users-value", &v1).await;
    assert_eq!(id, 1);
    // Same schema again: same id, no new version, also when formatted differently.
    assert_eq!(registry.register("users-value", &v1).await, id);
    let reformatted =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1).unwrap()).unwrap();
    assert_eq!(registry.register("users-value", &reformatted).await, id);
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1]))
    );

    // By id: only the schema (no schemaType for AVRO, like Confluent).
    assert_eq!(
        registry.get("/schemas/ids/1").await,
        (StatusCode::OK, json!({ "schema": v1 }))
    );
    // The converter asks with ?deleted=true.
    assert_eq!(
        registry.get("/schemas/ids/1?deleted=true").await.0,
        StatusCode::OK
    );
    assert_eq!(
        registry.get("/schemas/ids/1/versions").await,
        (
            StatusCode::OK,
            json!([{ "subject": "users-value", "version": 1 }])
        )
    );

    // Lookup.
    assert_eq!(
        registry
            .post("/subjects/users-value", &json!({ "schema": v1 }))
            .await,
        (
            StatusCode::OK,
            json!({ "subject": "users-value", "version": 1, "id": 1, "schema": v1 })
        )
    );

    // A compatible second version.
    let v2 = user_v2();
    assert_eq!(registry.register("users-value", &v2).await, 2);
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1, 2]))
    );
    let expected_latest = json!({ "subject": "users-value", "version": 2, "id": 2, "schema": v2 });
    assert_eq!(
        registry.get("/subjects/users-value/versions/latest").await,
        (StatusCode::OK, expected_latest.clone())
    );
    assert_eq!(
        registry.get("/subjects/users-value/versions/2").await,
        (StatusCode::OK, expected_latest)
    );
    assert_eq!(
        registry
            .get("/subjects/users-value/versions/1/schema")
            .await,
        (StatusCode::OK, serde_json::from_str::<Value>(&v1).unwrap())
    );

    // Ids are global: the same schema under another subject shares the id.
    assert_eq!(registry.register("other-value", &v1).await, 1);
    assert_eq!(
        registry.get("/subjects").await,
        (StatusCode::OK, json!(["other-value", "users-value"]))
    );
    assert_eq!(
        registry.get("/schemas/ids/1/subjects").await,
        (StatusCode::OK, json!(["other-value", "users-value"]))
    );

    // Subjects with a slash travel percent-encoded, as the converter sends them.
    assert_eq!(registry.register("team%2Fusers", &v1).await, 1);
    assert_eq!(
        registry
            .get("/subjects/team%2Fusers/versions/latest")
            .await
            .1["subject"],
        json!("team/users")
    );

    registry.stop().await;
}

#[tokio::test]
async fn incompatible_changes_are_rejected_under_backward() {
    let registry = TestRegistry::start().await;
    registry.register("users-value", &user_v1()).await;

    // Adding a field without a default: new readers cannot read old data.
    let no_default = user_schema(r#"{"name":"id","type":"string"},{"name":"age","type":"int"}"#);
    let result = registry
        .post(
            "/subjects/users-value/versions",
            &json!({ "schema": no_default }),
        )
        .await;
    assert_error(&result, StatusCode::CONFLICT, 409);
    assert!(
        result.1["message"].as_str().unwrap().contains("age"),
        "{}",
        result.1
    );

    // Changing a field's type.
    let retyped = user_schema(r#"{"name":"id","type":"int"}"#);
    let result = registry
        .post(
            "/subjects/users-value/versions",
            &json!({ "schema": retyped }),
        )
        .await;
    assert_error(&result, StatusCode::CONFLICT, 409);

    // Neither was registered.
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1]))
    );
    assert_error(
        &registry.get("/schemas/ids/2").await,
        StatusCode::NOT_FOUND,
        40403,
    );
    assert_error(
        &registry
            .post("/subjects/users-value", &json!({ "schema": no_default }))
            .await,
        StatusCode::NOT_FOUND,
        40403,
    );

    // Adding a field with a default is fine and becomes version 2.
    assert_eq!(registry.register("users-value", &user_v2()).await, 2);
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1, 2]))
    );
    registry.stop().await;
}

#[tokio::test]
async fn subject_config_overrides_global() {
    let registry = TestRegistry::start().await;
    assert_eq!(
        registry.get("/config").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    registry.register("loose", &user_v1()).await;
    registry.register("strict", &user_v1()).await;

    assert_eq!(
        registry
            .put("/config/loose", &json!({ "compatibility": "NONE" }))
            .await,
        (StatusCode::OK, json!({ "compatibility": "NONE" }))
    );
    assert_eq!(
        registry.get("/config/loose").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "NONE" }))
    );
    assert_error(
        &registry.get("/config/strict").await,
        StatusCode::NOT_FOUND,
        40408,
    );
    assert_eq!(
        registry.get("/config/strict?defaultToGlobal=true").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "BACKWARD" }))
    );

    let breaking = user_schema(r#"{"name":"id","type":"boolean"}"#);
    assert_eq!(registry.register("loose", &breaking).await, 2);
    let result = registry
        .post("/subjects/strict/versions", &json!({ "schema": breaking }))
        .await;
    assert_error(&result, StatusCode::CONFLICT, 409);

    // Changing the global level changes subjects without their own level only.
    assert_eq!(
        registry
            .put("/config", &json!({ "compatibility": "forward" }))
            .await,
        (StatusCode::OK, json!({ "compatibility": "FORWARD" }))
    );
    let added_without_default =
        user_schema(r#"{"name":"id","type":"string"},{"name":"age","type":"int"}"#);
    assert_eq!(registry.register("strict", &added_without_default).await, 3);
    assert_eq!(
        registry.get("/config").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "FORWARD" }))
    );

    // Unknown levels are 42203; deleting the subject level falls back to global.
    assert_error(
        &registry
            .put("/config/loose", &json!({ "compatibility": "SIDEWAYS" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42203,
    );
    assert_eq!(
        registry.delete("/config/loose").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "NONE" }))
    );
    assert_eq!(
        registry.get("/config/loose?defaultToGlobal=true").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "FORWARD" }))
    );
    registry.stop().await;
}

#[tokio::test]
async fn compatibility_endpoint() {
    let registry = TestRegistry::start().await;
    let no_default = user_schema(r#"{"name":"id","type":"string"},{"name":"age","type":"int"}"#);

    // Unknown subject, against latest: compatible (Confluent's behaviour).
    assert_eq!(
        registry
            .post(
                "/compatibility/subjects/nobody/versions/latest",
                &json!({ "schema": no_default })
            )
            .await,
        (StatusCode::OK, json!({ "is_compatible": true }))
    );
    assert_error(
        &registry
            .post(
                "/compatibility/subjects/nobody/versions/1",
                &json!({ "schema": no_default }),
            )
            .await,
        StatusCode::NOT_FOUND,
        40401,
    );

    registry.register("users-value", &user_v1()).await;
    assert_eq!(
        registry
            .post(
                "/compatibility/subjects/users-value/versions/latest",
                &json!({ "schema": user_v2() })
            )
            .await,
        (StatusCode::OK, json!({ "is_compatible": true }))
    );
    assert_eq!(
        registry
            .post(
                "/compatibility/subjects/users-value/versions/1",
                &json!({ "schema": no_default })
            )
            .await,
        (StatusCode::OK, json!({ "is_compatible": false }))
    );
    let (status, verbose) = registry
        .post(
            "/compatibility/subjects/users-value/versions/latest?verbose=true",
            &json!({ "schema": no_default }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verbose["is_compatible"], json!(false));
    assert_eq!(
        verbose["messages"].as_array().unwrap().len(),
        1,
        "{verbose}"
    );
    assert_eq!(
        registry
            .post(
                "/compatibility/subjects/users-value/versions?verbose=true",
                &json!({ "schema": user_v2() })
            )
            .await,
        (
            StatusCode::OK,
            json!({ "is_compatible": true, "messages": [] })
        )
    );
    assert_error(
        &registry
            .post(
                "/compatibility/subjects/users-value/versions/9",
                &json!({ "schema": user_v2() }),
            )
            .await,
        StatusCode::NOT_FOUND,
        40402,
    );
    // Invalid schema: 42201, or an incompatible verbose result.
    assert_error(
        &registry
            .post(
                "/compatibility/subjects/users-value/versions/latest",
                &json!({ "schema": "{nope" }),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
    );
    let (status, verbose) = registry
        .post(
            "/compatibility/subjects/users-value/versions/latest?verbose=true",
            &json!({ "schema": "{nope" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verbose["is_compatible"], json!(false));
    // Nothing was registered by testing.
    assert_eq!(
        registry.get("/subjects/users-value/versions").await,
        (StatusCode::OK, json!([1]))
    );
    registry.stop().await;
}

#[tokio::test]
async fn errors_have_confluent_shapes() {
    let registry = TestRegistry::start().await;
    assert_eq!(
        registry.get("/schemas/types").await,
        (StatusCode::OK, json!(["AVRO"]))
    );
    assert_error(
        &registry
            .post(
                "/subjects/x/versions",
                &json!({ "schema": "{\"type\":\"recrd\"}" }),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
    );
    assert_error(
        &registry.post("/subjects/x/versions", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42201,
    );
    let protobuf = registry
        .post(
            "/subjects/x/versions",
            &json!({ "schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF" }),
        )
        .await;
    assert_error(&protobuf, StatusCode::UNPROCESSABLE_ENTITY, 42201);
    assert!(protobuf.1["message"].as_str().unwrap().contains("AVRO"));
    assert_eq!(
        registry
            .post(
                "/subjects/x/versions",
                &json!({ "schema": user_v1(), "schemaType": "AVRO" })
            )
            .await,
        (StatusCode::OK, json!({ "id": 1 }))
    );

    assert_error(
        &registry.get("/schemas/ids/42").await,
        StatusCode::NOT_FOUND,
        40403,
    );
    assert_error(
        &registry.get("/subjects/missing/versions").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        &registry.get("/subjects/missing/versions/latest").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        &registry
            .post("/subjects/missing", &json!({ "schema": user_v1() }))
            .await,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        &registry.get("/subjects/x/versions/3").await,
        StatusCode::NOT_FOUND,
        40402,
    );
    assert_error(
        &registry.get("/subjects/x/versions/zero").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42202,
    );
    assert_error(
        &registry.get("/no/such/route").await,
        StatusCode::NOT_FOUND,
        404,
    );
    assert_error(
        &registry.delete("/schemas/types").await,
        StatusCode::METHOD_NOT_ALLOWED,
        405,
    );
    let malformed = registry
        .client
        .post(registry.url("/subjects/x/versions"))
        .basic_auth(WRITER, Some(PASSWORD))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    // Plain application/json requests work too.
    let plain = registry
        .client
        .post(registry.url("/subjects/x"))
        .json(&json!({ "schema": user_v1() }))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    registry.stop().await;
}

#[tokio::test]
async fn delete_subject_soft_then_permanent() {
    let registry = TestRegistry::start().await;
    registry.register("users-value", &user_v1()).await;
    registry.register("users-value", &user_v2()).await;

    assert_eq!(
        registry.delete("/subjects/users-value").await,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_eq!(registry.get("/subjects").await, (StatusCode::OK, json!([])));
    assert_eq!(
        registry.get("/subjects?deleted=true").await,
        (StatusCode::OK, json!(["users-value"]))
    );
    assert_error(
        &registry.get("/subjects/users-value/versions").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    // Soft-deleted schemas can still be read by id (old messages stay decodable).
    assert_eq!(registry.get("/schemas/ids/2").await.0, StatusCode::OK);
    assert_error(
        &registry.delete("/subjects/users-value").await,
        StatusCode::NOT_FOUND,
        40404,
    );
    assert_eq!(
        registry
            .delete("/subjects/users-value?permanent=true")
            .await,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_error(
        &registry.get("/schemas/ids/2").await,
        StatusCode::NOT_FOUND,
        40403,
    );
    assert_error(
        &registry.delete("/subjects/users-value").await,
        StatusCode::NOT_FOUND,
        40401,
    );

    // Versions can be deleted one at a time too.
    registry.register("events", &user_v1()).await;
    registry.register("events", &user_v2()).await;
    assert_eq!(
        registry.delete("/subjects/events/versions/latest").await,
        (StatusCode::OK, json!(2))
    );
    assert_eq!(
        registry.get("/subjects/events/versions").await,
        (StatusCode::OK, json!([1]))
    );
    assert_eq!(
        registry.get("/subjects/events/versions?deleted=true").await,
        (StatusCode::OK, json!([1, 2]))
    );
    registry.stop().await;
}

#[tokio::test]
async fn references_between_subjects() {
    let registry = TestRegistry::start().await;
    let address = r#"{"type":"record","name":"Address","namespace":"echo","fields":[{"name":"city","type":"string"}]}"#;
    let person = r#"{"type":"record","name":"Person","namespace":"echo","fields":[{"name":"home","type":"echo.Address"}]}"#;
    registry.register("address", address).await;
    let references = json!([{ "name": "echo.Address", "subject": "address", "version": 1 }]);
    let (status, body) = registry
        .post(
            "/subjects/person/versions",
            &json!({ "schema": person, "schemaType": "AVRO", "references": references }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].clone();
    assert_eq!(
        registry.get("/subjects/person/versions/1").await.1["references"],
        references
    );
    assert_eq!(
        registry.get(&format!("/schemas/ids/{id}")).await.1["references"],
        references
    );
    assert_eq!(
        registry
            .get("/subjects/address/versions/1/referencedby")
            .await,
        (StatusCode::OK, json!([id]))
    );
    assert_error(
        &registry.delete("/subjects/address").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        42206,
    );
    registry.stop().await;
}
