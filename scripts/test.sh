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
# A failing run must not end the script here (set -e with pipefail): the counts come last.
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE '^test result: .* ([0-9]+) passed' target/test-output.txt | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '^test result: .* ([0-9]+) failed' target/test-output.txt | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "host: $passed passed, $failed failed"

# The cgroup v2 tier: the same end-to-end suite in a Debian 12 guest with systemd as PID 1 and
# pure cgroup v2 (qemu, software emulation), once as a systemd service and once from a session
# scope (scripts/vm-test.sh, docs/vm-tests.md). The guest image is cached between runs.
set +e
FORGE_VM_OUT=target/vm scripts/vm-test.sh 2>&1 | tee target/vm-output.txt
vm_status=${PIPESTATUS[0]}
set -e
vm_line=$(grep -E '^vm: [0-9]+ passed, [0-9]+ failed' target/vm-output.txt | tail -1 || true)
vm_passed=$(grep -oE '[0-9]+ passed' <<<"$vm_line" | grep -oE '[0-9]+' || echo 0)
vm_failed=$(grep -oE '[0-9]+ failed' <<<"$vm_line" | grep -oE '[0-9]+' || echo 0)
if [[ -z $vm_line && $vm_status -eq 0 ]]; then
    vm_status=1 # the guest reported nothing: not a pass
fi

echo "total: $((passed + vm_passed)) passed, $((failed + vm_failed)) failed"
if ((status != 0)); then exit "$status"; fi
exit "$vm_status"
