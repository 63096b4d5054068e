"""What every echo client needs: where the topics are, how records are framed and keyed.

The contract itself is docs/CLIENTS.md; the schemas are the .avsc files under avro/, which
echo's operators register (each record with the shared types it names defined in it).
"""

import argparse
import json
import pathlib
import time
import uuid

from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

AVRO_DIR = pathlib.Path(__file__).resolve().parents[2] / "avro"

# Catalogue names of the topics a client writes and reads (topics/topics.toml); a deployment
# may put a prefix in front of each.
UPLOAD_REQUESTS = "echo.upload.requests"
UPLOAD_COMMANDS = "echo.upload.commands"
UPLOAD_EVENTS = "echo.upload.events"
RESOURCE_EVENTS = "echo.resource.events"


def connection_args(parser: argparse.ArgumentParser) -> None:
    """The flags every example takes; the defaults are the local stack's."""
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--registry-url", default="http://127.0.0.1:8081")
    parser.add_argument("--topic-prefix", default="", help="the deployment's topic prefix")


def consumer_config(args: argparse.Namespace, group: str) -> dict:
    """A consumer that commits its offsets itself, after it has handled a record."""
    return {
        "bootstrap.servers": args.bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
    }


def producer_config(args: argparse.Namespace) -> dict:
    """A producer of records echo accepts."""
    return {
        "bootstrap.servers": args.bootstrap_servers,
        # echo places a resource's records by the Java client's murmur2 hash of the key and
        # dead-letters a record found on another partition: librdkafka's default
        # (consistent_random, a CRC32) would put most keys elsewhere.
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
    }


def record_name(type_name: str) -> str:
    """The full Avro name of an event type (`upload.requested` → `echo.upload.UploadRequested`),
    from its .avsc under avro/<context>/ (a type's name need not start with its context:
    `cleanup.completed` is the Resource context's)."""
    (path,) = AVRO_DIR.glob(f"*/{type_name}.avsc")
    avsc = json.loads(path.read_text())
    return f"{avsc['namespace']}.{avsc['name']}"


def serializer(registry: SchemaRegistryClient, topic: str, type_name: str) -> AvroSerializer:
    """Confluent wire format with the version of `type_name` echo registered on `topic`.

    One topic carries several record types, so subjects are `<topic>-<record full name>`
    (TopicRecordNameStrategy). Clients never register schemas: the registry refuses writes
    from anyone but echo's operators, so the serializer writes with the latest registered
    version, the self-contained schema (the .avsc names shared types it does not define).
    """
    registered = registry.get_latest_version(f"{topic}-{record_name(type_name)}")
    return AvroSerializer(
        registry,
        registered.schema,
        conf={
            "auto.register.schemas": False,
            "use.latest.version": True,
            "subject.name.strategy": topic_record_subject_name_strategy,
        },
    )


def deserializer(registry: SchemaRegistryClient) -> AvroDeserializer:
    """Decodes any record of echo's topics with its writer schema (found by the schema id
    in the record); which type it is says the `ce_type` header."""
    return AvroDeserializer(registry)


def header(msg, name: str):
    """The value of a Kafka header as text, or None."""
    for key, value in msg.headers() or []:
        if key == name:
            return value.decode() if value is not None else None
    return None


def metadata(resource_id: str, producer: str, causation_id=None) -> dict:
    """`echo.common.EventMetadata` of a record this client issues."""
    return {
        "event_id": str(uuid.uuid4()),
        "correlation_id": resource_id,
        "causation_id": causation_id,
        "occurred_at": int(time.time() * 1000),
        "producer": producer,
        "schema_version": 1,
    }


def cloud_event_headers(type_name: str, meta: dict) -> list:
    """The CloudEvents Kafka binding (binary mode) echo writes and expects."""
    headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", meta["event_id"]),
        ("ce_type", type_name),
        ("ce_source", f"/clients/{meta['producer']}"),
        ("ce_time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meta["occurred_at"] / 1000))),
        ("ce_subject", meta["correlation_id"]),
        ("ce_correlationid", meta["correlation_id"]),
        ("content-type", "application/avro"),
    ]
    if meta["causation_id"]:
        headers.append(("ce_causationid", meta["causation_id"]))
    return headers


def print_json(value: dict) -> None:
    print(json.dumps(value, indent=2, sort_keys=True), flush=True)
