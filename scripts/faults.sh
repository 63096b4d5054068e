#!/usr/bin/env bash
# The fault run (docs/RELIABILITY.md): the chaos driver without kills, while a fault lasts
# minutes in the middle of 30 uploads, each fault in a run of its own: the object store frozen
# (SIGSTOP: a hung server, a partitioned network), the schema registry frozen, the object
# store's disk full. Prints the chaos figures of each: submitted / terminal / stuck, good
# uploads rejected, duplicate effects, DLQ records, and how soon an upload ended after the
# fault. Exits non-zero unless nothing is stuck, lost, duplicated or wrongly rejected in every
# run. Not part of the test command; about five minutes a fault.
#   bash scripts/faults.sh --seed 42              # every fault
#   bash scripts/faults.sh registry --seed 42     # some of them (store, registry, disk)
# Other arguments go to the driver (`--seed N`, `--fault-secs N`, `--uploads N`). The disk
# fault puts the store's data on an empty filesystem of its own (a 1 GiB tmpfs, so it needs
# root to mount; the stack's objects are set aside meanwhile) for its run, restarting the
# stack around it, and fills it for two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

faults=()
while [[ $# -gt 0 && "$1" != -* ]]; do
  faults+=("$1")
  shift
done
[[ ${#faults[@]} -gt 0 ]] || faults=(store registry disk)

cargo build --quiet -p echoctl -p echo-tests -p echo-schema-registry -p echo-dev-s3 --bins
echoctl=("${CARGO_TARGET_DIR:-target}/debug/echoctl")
"${echoctl[@]}" dev up >/dev/null
store="${ECHO_DATA_DIR:-$HOME/.local/share/echo}/s3"

# The store on a small filesystem of its own, empty (the stack's objects set aside), and back.
own_disk() {
  [[ $EUID -eq 0 ]] || { echo "the disk fault mounts a filesystem: run it as root" >&2; return 1; }
  "${echoctl[@]}" dev down >/dev/null
  mv "$store" "$store.kept"
  mkdir "$store"
  mount -t tmpfs -o size=1g echo-store-disk "$store"
  "${echoctl[@]}" dev up >/dev/null
}
shared_disk() {
  "${echoctl[@]}" dev down >/dev/null
  umount "$store"
  rmdir "$store"
  mv "$store.kept" "$store"
  "${echoctl[@]}" dev up >/dev/null
}

status=0
for fault in "${faults[@]}"; do
  echo "== fault: $fault"
  args=(--uploads 30 --fault "$fault")
  if [[ $fault == disk ]]; then
    own_disk || { status=1; continue; }
    args+=(--fault-secs 120)
  fi
  "${CARGO_TARGET_DIR:-target}/debug/echo-chaos" "${args[@]}" "$@" || status=1
  if [[ $fault == disk ]]; then shared_disk; fi
done
exit "$status"
