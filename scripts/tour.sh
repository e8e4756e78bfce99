#!/usr/bin/env bash
# A tour of `forge run`: builds Forge, builds the default image from the host's
# binaries (offline), and runs containers that show what isolation and networking they get.
# The containers run in a private network namespace that this script makes: Forge's bridge and
# nftables rules are created there and never touch the host's own network.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "tour.sh: run as root: forge creates namespaces and mounts" >&2
    exit 1
fi
if [[ -z ${FORGE_TOUR_NETNS:-} ]]; then
    scripts/install-deps.sh
    cargo build --release --quiet -p forge-cli
    # --fork: a child in the new namespace runs the rest; it ends with the script.
    exec env FORGE_TOUR_NETNS=1 unshare --net --fork "$0" "$@"
fi
ip link set lo up
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
echo "== networking: the default bridge network, names, a published port"
$forge --root "$root" run -d --name web -p 8080:80 host sh -c \
    'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'
sleep 0.5
$forge --root "$root" run --rm --name client host sh -c '
    echo "client address:   $(ip -4 -o addr show eth0 | awk "{print \$4}")"
    ping -c 1 -W 2 web | head -2 | tail -1
    printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 web 80 | tail -1'
printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 3 127.0.0.1 8080 | tail -1 | sed 's/^/host via -p 8080: /'
$forge --root "$root" network ls
$forge --root "$root" rm -f web >/dev/null
echo "== done; try: $forge --root $root run -it --rm host sh"
