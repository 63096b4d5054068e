"""Submits an audio file to echo from Python, the way any team's producer would.

    python submit.py FILE [--resource-id ID] [--content-type audio/wav]

1. publishes `upload.requested` (keyed by the resource id) with a fresh X25519 public key;
2. reads `echo.upload.events` until echo answers for that resource: `upload.url.generated`
   carries the pre-signed PUT URL sealed to that key (only this client can open it), or
   `upload.failed` says why not;
3. PUTs the file, then sends the `upload.finalize` command;
4. waits for `upload.completed` (or `upload.failed`) and prints one JSON object.

Exit code 0 when the upload completed, 1 when echo refused it.
"""

import argparse
import base64
import mimetypes
import os
import sys
import time
import uuid

import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext
from nacl.public import PrivateKey, SealedBox

import echo_contract as echo

PRODUCER = "python-example"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--resource-id", default=str(uuid.uuid4()))
    parser.add_argument("--content-type")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per answer")
    echo.connection_args(parser)
    args = parser.parse_args()
    resource = args.resource_id
    content_type = args.content_type or mimetypes.guess_type(args.file)[0] or "audio/wav"
    topic = lambda name: args.topic_prefix + name  # noqa: E731

    registry = SchemaRegistryClient({"url": args.registry_url})
    producer = Producer(echo.producer_config(args))
    decode = echo.deserializer(registry)

    # Read the answers from the end of the upload events topic: assigned before the request
    # is sent, so the answer cannot be missed.
    consumer = Consumer(
        {
            **echo.consumer_config(args, f"{PRODUCER}-{uuid.uuid4()}"),
            "auto.offset.reset": "latest",
        }
    )
    consumer.subscribe([topic(echo.UPLOAD_EVENTS)])
    wait_for_assignment(consumer, args.timeout)

    reply_key = PrivateKey.generate()
    request_meta = echo.metadata(resource, PRODUCER)
    send(
        producer,
        registry,
        topic(echo.UPLOAD_REQUESTS),
        "upload.requested",
        resource,
        {
            "metadata": request_meta,
            "filename": os.path.basename(args.file),
            "content_type": content_type,
            "declared_size_bytes": os.path.getsize(args.file),
            "reply_key": base64.b64encode(bytes(reply_key.public_key)).decode(),
            # Who the upload is charged to: the token the deployment issued this team, kept
            # out of the command line; none on a deployment that admits anonymous requests.
            "tenant_token": os.environ.get("ECHO_TENANT_TOKEN"),
        },
    )

    kind, answer = next_event(consumer, decode, resource, args.timeout)
    if kind == "upload.failed":
        return refused(resource, answer)
    if kind != "upload.url.generated":
        raise SystemExit(f"unexpected answer {kind} for {resource}")
    box = SealedBox(reply_key)
    url = box.decrypt(base64.b64decode(answer["sealed_upload_url"])).decode()
    # Proof that the finalize comes from this client: every client can read the resource id.
    owner_token = box.decrypt(base64.b64decode(answer["sealed_owner_token"])).decode()
    with open(args.file, "rb") as body:
        put = requests.put(url, data=body, headers={"Content-Type": content_type}, timeout=60)
    put.raise_for_status()

    send(
        producer,
        registry,
        topic(echo.UPLOAD_COMMANDS),
        "upload.finalize",
        resource,
        {
            "metadata": echo.metadata(resource, PRODUCER, answer["metadata"]["event_id"]),
            "etag": put.headers.get("ETag"),
            "owner_token": owner_token,
        },
    )
    kind, outcome = next_event(consumer, decode, resource, args.timeout)
    consumer.close()
    if kind == "upload.failed":
        return refused(resource, outcome)
    echo.print_json(
        {"resource_id": resource, "status": "uploaded", "object_key": outcome["object_key"]}
    )
    return 0


def send(producer, registry, topic, type_name, resource, value):
    """Publishes one record and waits until the broker has it."""
    encoded = echo.serializer(registry, topic, type_name)(
        value, SerializationContext(topic, MessageField.VALUE)
    )
    delivered = []
    producer.produce(
        topic,
        key=resource.encode(),
        value=encoded,
        headers=echo.cloud_event_headers(type_name, value["metadata"]),
        on_delivery=lambda err, msg: delivered.append(err),
    )
    producer.flush(30)
    if delivered != [None]:
        raise SystemExit(f"publishing {type_name} failed: {delivered}")


def wait_for_assignment(consumer, timeout):
    deadline = time.monotonic() + timeout
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise SystemExit("no partitions assigned: is Kafka up and the topic there?")
        consumer.poll(0.2)
    # The positions at the end are fixed once the first poll after the assignment returns.
    consumer.poll(0.5)


def next_event(consumer, decode, resource, timeout):
    """The next record about `resource`: (its type, its decoded value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() or msg.key() != resource.encode():
            continue
        value = decode(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        return echo.header(msg, "ce_type"), value
    raise SystemExit(f"no answer for {resource} within {timeout} s")


def refused(resource, failed):
    echo.print_json(
        {
            "resource_id": resource,
            "status": "upload_failed",
            "reason_code": failed["reason_code"],
            "message": failed["message"],
        }
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
