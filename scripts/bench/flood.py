"""A flood of junk upload requests from one client, and what it leaves in the upload
processor's state: resident memory and restore time right after the flood and once the
requests have retired (docs/RELIABILITY.md, "Bounded state").

Run it with `scripts/flood.sh`. It starts its own upload, quota and resource processors
(release build) on a topic prefix of its own, publishes N `upload.requested` with a plain Kafka
client (confluent-kafka, Confluent-framed Avro, as any client would), each for a fresh resource
id and none with a tenant token (so all are the anonymous tenant's): half are refused at once (a
content type echo does not take), half are valid and, within the tenant's requests per minute
(`--requests-per-minute`, the deployment's 600 by default), get a URL that nobody uses; the
rest are refused by the quota. It waits until every request has its answer, then restarts the upload processor
and reads its restore time and resident memory; waits past the URLs' expiry and the retirement
delay, and measures again. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "python"))
import echo_contract as echo  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

ECHOCTL = ROOT / "target" / "release" / "echoctl"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def start(name: str, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(ECHOCTL), "run", name, "--instance", "flood"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def restored(log: Path, patience_s: float = 600) -> tuple[float, int]:
    """Waits for the processor's `state restored` lines covering all six partitions: (seconds
    from start to the last of them by their timestamps, keys restored)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        lines = [ANSI.sub("", l) for l in log.read_text(errors="replace").splitlines()]
        done = [l for l in lines if "state restored" in l]
        parts = {p for l in done for p in re.findall(r"partitions=\[([0-9, ]*)\]", l)}
        covered = {int(p) for s in parts for p in s.split(",") if p.strip()}
        if len(covered) >= 6:
            ms = sum(int(m) for l in done for m in re.findall(r"\belapsed_ms=(\d+)", l))
            keys = sum(int(k) for l in done for k in re.findall(r"\bkeys=(\d+)", l))
            return ms / 1000, keys
        time.sleep(0.5)
    raise RuntimeError(f"the processor did not restore its state in {patience_s} s ({log})")


def measure(label: str, env: dict, logs: Path) -> str:
    log = logs / f"upload-{label}.log"
    proc = start("upload", env, log)
    try:
        seconds, keys = restored(log)
        time.sleep(2)
        return f"| {label} | {keys} | {seconds:.2f} | {rss_mb(proc.pid):.0f} |"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--url-ttl-secs", type=int, default=900, help="upload.url_ttl_secs")
    parser.add_argument("--retire-after-ms", type=int, default=600_000, help="upload.retire_after_ms")
    parser.add_argument("--requests-per-minute", type=int, default=600,
                        help="quota.default.requests_per_minute (the flood is one tenant's)")
    echo.connection_args(parser)
    args = parser.parse_args()

    prefix = f"bench.flood.{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "ECHO_KAFKA__TOPIC_PREFIX": prefix, "RUST_LOG": "info",
           "ECHO_UPLOAD__URL_TTL_SECS": str(args.url_ttl_secs),
           "ECHO_UPLOAD__RETIRE_AFTER_MS": str(args.retire_after_ms),
           "ECHO_QUOTA__DEFAULT__REQUESTS_PER_MINUTE": str(args.requests_per_minute)}
    for setup in (["topics", "apply"], ["schemas", "register"]):
        subprocess.run([str(ECHOCTL), *setup], env=env, check=True, stdout=subprocess.DEVNULL)
    logs = Path(os.environ.get("ECHO_DATA_DIR", Path.home() / ".local/share/echo")) / "bench" / "flood"
    logs.mkdir(parents=True, exist_ok=True)
    rows = [measure("before the flood", env, logs)]

    upload = start("upload", env, logs / "upload-flood.log")
    quota = start("quota", env, logs / "quota-flood.log")
    resource = start("resource", env, logs / "resource-flood.log")
    try:
        summary, *measured = flood(args, env, logs, prefix, upload)
    finally:
        for proc in (upload, quota, resource):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    rows += measured
    print(summary)
    print("| upload processor | keys restored | restore s | resident MB |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))


def flood(args, env: dict, logs: Path, prefix: str, upload: subprocess.Popen) -> list[str]:
    """Publishes the flood, waits until every request is answered, and measures right after
    and once the requests have retired; the summary line first, then the table's rows."""
    rows = []
    registry = SchemaRegistryClient({"url": args.registry_url})
    topic = prefix + echo.UPLOAD_REQUESTS
    serialize = echo.serializer(registry, topic, "upload.requested")
    producer = Producer(echo.producer_config(args))
    key = base64.b64encode(os.urandom(32)).decode()
    started = time.monotonic()
    for i in range(args.requests):
        resource_id = str(uuid.uuid4())
        meta = echo.metadata(resource_id, "flood")
        value = {"metadata": meta, "filename": "x.wav",
                 "content_type": "audio/wav" if i % 2 else "video/x-junk",
                 "declared_size_bytes": 1000, "reply_key": key, "options": None,
                 "tenant_token": None}
        payload = serialize(value, SerializationContext(topic, MessageField.VALUE))
        while True:
            try:
                producer.produce(topic, key=resource_id, value=payload,
                                 headers=echo.cloud_event_headers("upload.requested", meta))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush()
    published = time.monotonic() - started

    # Every request has its answer once the upload processor's group has committed past them
    # and past the quota's answers, and the quota's group past its reservations.
    groups = {"echo.upload": [echo.UPLOAD_REQUESTS, "echo.upload.quota-events"],
              "echo.quota": ["echo.upload.quota"]}
    watchers = {g: Consumer({"bootstrap.servers": args.bootstrap_servers, "group.id": prefix + g})
                for g in groups}
    # echo writes in transactions: a partition it wrote ends with a commit marker, an offset no
    # consumer's position passes until more records follow, so one offset behind is caught up.
    written_by_echo = {"echo.upload.quota-events", "echo.upload.quota"}
    quiet = 0
    while quiet < 3:
        behind = 0
        for group, topics in groups.items():
            for t in topics:
                parts = [TopicPartition(prefix + t, p) for p in range(6)]
                committed = watchers[group].committed(parts)
                for tp, c in zip(parts, committed):
                    gap = watchers[group].get_watermark_offsets(tp)[1] - max(c.offset, 0)
                    behind += max(0, gap - (1 if t in written_by_echo else 0))
        quiet = quiet + 1 if behind <= 0 else 0
        time.sleep(1)
    handled = time.monotonic() - started
    upload.send_signal(signal.SIGTERM)
    upload.wait(timeout=60)
    rows.append(measure("right after the flood", env, logs))

    # Past the URLs' expiry (refused requests need not wait for it) and the retirement delay.
    wait_s = args.url_ttl_secs + args.retire_after_ms / 1000 + 30
    retiring = start("upload", env, logs / "upload-retire.log")
    try:
        time.sleep(wait_s)
    finally:
        retiring.send_signal(signal.SIGTERM)
        retiring.wait(timeout=60)
    rows.append(measure(f"{wait_s:.0f} s later", env, logs))
    summary = (f"{args.requests} requests from one client published in {published:.1f} s, "
               f"all answered after {handled:.1f} s; upload.url_ttl_secs {args.url_ttl_secs}, "
               f"upload.retire_after_ms {args.retire_after_ms}, "
               f"quota.default.requests_per_minute {args.requests_per_minute}\n")
    return [summary, *rows]


if __name__ == "__main__":
    main()
