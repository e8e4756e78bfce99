#!/usr/bin/env bash
# The main job: `forge-supervise configs/demo.toml` — a web server with a health check, a client
# that waits for it to be healthy and reaches it by name, and a flaky service restarted with
# growing delays. Runs in the foreground until Ctrl-C (or for DEMO_SECONDS seconds), then stops
# everything cleanly.
#
# Forge's bridge and nftables rules are made in a private network namespace that this script
# creates, so the host's own network is never touched; port 8080 is published there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "demo.sh: run as root: forge creates namespaces, mounts and cgroups" >&2
    exit 1
fi
if [[ -z ${FORGE_DEMO_NETNS:-} ]]; then
    scripts/install-deps.sh
    cargo build --release --quiet -p forge-cli -p forge-supervisor
    # --fork: a child in the new namespace runs the rest; it ends with the script.
    exec env FORGE_DEMO_NETNS=1 unshare --net --fork "$0" "$@"
fi
ip link set lo up
root=${FORGE_ROOT:-/var/lib/forge}
echo "== forge-supervise configs/demo.toml (Ctrl-C stops it; in another terminal: target/release/forge --root $root ps)"
if [[ -n ${DEMO_SECONDS:-} ]]; then
    exec timeout --preserve-status -s INT "$DEMO_SECONDS" \
        target/release/forge-supervise --root "$root" configs/demo.toml
fi
exec target/release/forge-supervise --root "$root" configs/demo.toml
