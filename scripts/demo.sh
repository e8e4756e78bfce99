#!/usr/bin/env bash
# The main job until forge-supervise lands: builds Forge, builds the default image from the host's
# binaries (offline), and runs containers that show what isolation they get.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "demo.sh: run as root: forge creates namespaces and mounts" >&2
    exit 1
fi
scripts/install-deps.sh
cargo build --release --quiet -p forge-cli
forge=target/release/forge
root=${FORGE_ROOT:-/var/lib/forge}

echo "== forge run: a container from the host's own binaries"
$forge --root "$root" run --rm --name demo host sh -c '
    echo "pid inside:       $$"
    echo "hostname:         $(hostname)"
    echo "processes seen:   $(ls -d /proc/[0-9]* | wc -l)"
    echo "/home has:        [$(ls -A /home)]"
    echo "root filesystem:  $(awk "\$5 == \"/\" {print \$9}" /proc/self/mountinfo)"
    echo "network links:    $(ls /sys/class/net | tr "\n" " ")"
    touch /proc/sys/kernel/x 2>/dev/null || echo "/proc/sys:        read-only"
    exit 7' || echo "== exit code seen by the host: $?"

echo "== detached: run -d, ps, logs, stop"
$forge --root "$root" run -d --name demo-bg host sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'
sleep 1
$forge --root "$root" ps
$forge --root "$root" logs demo-bg | tail -3
$forge --root "$root" stop -t 1 demo-bg >/dev/null
$forge --root "$root" rm demo-bg >/dev/null
echo "== done; try: $forge --root $root run -it --rm host sh"
