#!/usr/bin/env bash
# The project's test command (README, CI): installs what is missing, builds, starts the
# local stack (Kafka, Schema Registry, S3, whisper model; Jaeger and Prometheus, built once
# from their Go modules) and the client examples' packages, then runs lints and every test
# against it. Idempotent: a second run reuses installs and running services.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/stack/install.sh
bash scripts/examples/install.sh
cargo build --workspace --all-targets
cargo run --quiet -p echoctl -- dev up --observability
# The multilingual model too: its tests would otherwise download it mid-test.
cargo run --quiet -p echoctl -- model prepare --model base
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/asyncapi/check.sh
bash scripts/k8s/check.sh
bash scripts/secrets-check.sh
cargo test --workspace
