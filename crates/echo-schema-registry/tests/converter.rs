//! A round trip through `schema_registry_converter` (the client echo uses) against this
//! server: the encoder registers the schema, the bytes are Confluent's wire format, and
//! the decoder fetches the schema by id to read them back.

mod common;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use common::{TestRegistry, PASSWORD, WRITER};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

const TOPIC: &str = "echo.transcripts";
const RECORD: &str = "echo.events.Transcript";
const SCHEMA: &str = r#"{
  "type": "record",
  "name": "Transcript",
  "namespace": "echo.events",
  "fields": [
    {"name": "upload_id", "type": "string"},
    {"name": "duration_ms", "type": "long"},
    {"name": "language", "type": ["null", "string"], "default": null}
  ]
}"#;

fn fields() -> Vec<(&'static str, Value)> {
    vec![
        ("upload_id", Value::String("upload-42".to_owned())),
        ("duration_ms", Value::Long(81_250)),
        (
            "language",
            Value::Union(1, Box::new(Value::String("en".to_owned()))),
        ),
    ]
}

fn record() -> Value {
    Value::Record(
        fields()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

#[tokio::test]
async fn avro_round_trip_in_confluent_wire_format() {
    let registry = TestRegistry::start().await;
    // The encoder registers the schema: a write, so it signs in as the writer.
    let settings = SrSettings::new_builder(registry.base_url.clone())
        .no_proxy()
        .set_basic_authorization(WRITER, Some(PASSWORD))
        .build()
        .expect("sr settings");

    // Encode, registering the schema under TopicRecordNameStrategy's subject.
    let encoder = AvroEncoder::new(settings.clone());
    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        TOPIC.to_owned(),
        SuppliedSchema::new(Some(RECORD.to_owned()), SchemaType::Avro, SCHEMA.to_owned()),
    );
    let bytes = encoder.encode(fields(), strategy).await.expect("encode");

    // The server registered it under "<topic>-<record name>".
    let subject = format!("{TOPIC}-{RECORD}");
    let (status, latest) = registry
        .get(&format!("/subjects/{subject}/versions/latest"))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{latest}");
    let id = u32::try_from(latest["id"].as_u64().unwrap()).unwrap();
    assert_eq!(latest["version"], 1);

    // Confluent wire format: magic byte 0, 4-byte big-endian id, Avro binary body.
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(&bytes[1..5], &id.to_be_bytes(), "schema id");
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let body = GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(record())
        .unwrap();
    assert_eq!(&bytes[5..], body.as_slice(), "avro body");

    // Decode with a fresh decoder: it fetches the schema by id from the server.
    let decoder = AvroDecoder::new(settings.clone());
    let decoded = decoder.decode(Some(&bytes)).await.expect("decode");
    assert_eq!(decoded.value, record());
    assert_eq!(
        decoded.name.expect("record name").fullname(None),
        RECORD.to_owned()
    );

    // Encoding with the plain strategy (schema fetched as latest of the subject) gives
    // the same bytes.
    let plain = AvroEncoder::new(settings)
        .encode(
            fields(),
            SubjectNameStrategy::TopicRecordNameStrategy(TOPIC.to_owned(), RECORD.to_owned()),
        )
        .await
        .expect("encode with latest");
    assert_eq!(plain, bytes);

    registry.stop().await;
}

#[tokio::test]
async fn converter_sees_registry_errors() {
    let registry = TestRegistry::start().await;
    let settings = SrSettings::new_builder(registry.base_url.clone())
        .no_proxy()
        .build()
        .expect("sr settings");
    // Unknown id: the decoder reports the failure instead of producing garbage.
    let decoder = AvroDecoder::new(settings.clone());
    let bytes = [0u8, 0, 0, 0, 99, 2];
    assert!(decoder.decode(Some(&bytes)).await.is_err());
    // Unknown subject with the fetch-latest strategy.
    let encoder = AvroEncoder::new(settings);
    let result = encoder
        .encode(
            fields(),
            SubjectNameStrategy::TopicRecordNameStrategy("nothing".to_owned(), RECORD.to_owned()),
        )
        .await;
    assert!(result.is_err());
    registry.stop().await;
}
