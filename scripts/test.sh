#!/usr/bin/env bash
# Runs every test of Forge: formatting, lints, unit tests and the end-to-end tests that drive
# the real forge binary against the real kernel. Needs root (namespaces, mounts, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: run as root: the end-to-end tests create namespaces and mounts" >&2
    exit 1
fi
scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --workspace --quiet
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
passed=$(grep -oE '^test result: .* ([0-9]+) passed' target/test-output.txt | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "total: $passed passed, $failed failed"
exit "$status"
