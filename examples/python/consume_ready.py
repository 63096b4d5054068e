"""A downstream consumer of echo's results, in Python: reads `resource.ready` from
`echo.resource.events` in its own consumer group and fetches each resource's transcript
report (the JSON artifact: text, segments, timings) from the object store.

    python consume_ready.py [--group my-team] [--resource-id ID] [--s3-endpoint URL]

S3 credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY):
echo's operators grant a consumer read access to the bucket. Offsets are committed after a
report is handled, so a restarted consumer resumes where it stopped. With --resource-id it
prints that resource's report as JSON and exits (0 ready, 1 rejected); without, it prints one
line per resource and runs until interrupted.
"""

import argparse
import json
import sys
import time

import boto3
from botocore.config import Config
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

import echo_contract as echo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", default="python-example-reports")
    parser.add_argument("--resource-id", help="stop after this resource's outcome")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds, with --resource-id")
    parser.add_argument("--s3-endpoint", default="http://127.0.0.1:9000")
    parser.add_argument("--bucket", default="echo")
    echo.connection_args(parser)
    args = parser.parse_args()

    registry = SchemaRegistryClient({"url": args.registry_url})
    decode = echo.deserializer(registry)
    s3 = boto3.client(
        "s3",
        endpoint_url=args.s3_endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    consumer = Consumer({**echo.consumer_config(args, args.group), "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic_prefix + echo.RESOURCE_EVENTS])
    deadline = time.monotonic() + args.timeout
    try:
        while not args.resource_id or time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            kind = echo.header(msg, "ce_type")
            if kind not in ("resource.ready", "resource.rejected"):
                consumer.commit(msg)
                continue
            event = decode(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            resource = event["metadata"]["correlation_id"]
            outcome = handle(s3, args.bucket, kind, event)
            consumer.commit(msg)
            if not args.resource_id:
                print(f"{resource} {kind} {outcome.get('text', outcome.get('reason_code'))!r}")
            elif resource == args.resource_id:
                echo.print_json({"resource_id": resource, "status": kind, **outcome})
                return 0 if kind == "resource.ready" else 1
    finally:
        consumer.close()
    raise SystemExit(f"no outcome for {args.resource_id} within {args.timeout} s")


def handle(s3, bucket, kind, event) -> dict:
    """What a consumer takes away from one outcome event."""
    if kind == "resource.rejected":
        return {"reason_code": event["reason_code"], "message": event["message"]}
    artifacts = event["artifacts"]
    report = json.loads(s3.get_object(Bucket=bucket, Key=artifacts["json_key"])["Body"].read())
    text = " ".join(segment["text"].strip() for segment in report["segments"])
    return {"artifacts": artifacts, "report": report, "text": text}


if __name__ == "__main__":
    sys.exit(main())
