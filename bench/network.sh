#!/usr/bin/env bash
# Networking benchmark, in one run: start-up of a container on the default bridge network
# (`forge run --rm --net bridge host true`) against `podman run --rm --network bridge` (netavark)
# with `forge run --rm --net none` for reference, in one hyperfine run; then iperf3 TCP throughput
# between two forge containers on the default network against two bare network namespaces joined
# by a hand-made bridge (the physical limit). Prints markdown tables; --write-doc rewrites the
# "Networking" section of docs/benchmarks.md.
#
# Usage: sudo bench/network.sh [--write-doc]
#   --write-doc  rewrite the "Networking" section of docs/benchmarks.md
# Env: FORGE_BIN (skip the cargo build), RUNS (default 30), WARMUP (default 3),
#      IPERF_TIME (seconds per iperf3 test, default 5), IPERF_REPS (tests per path, default 5).
#
# Everything that makes links, addresses or firewall rules (forge, podman/netavark, the hand-made
# bridge) runs in a private network namespace and a private mount namespace that this script makes
# (it re-executes itself under `unshare --net --mount --fork`), never in the caller's. No traffic
# leaves the namespaces the script made, and podman pulls nothing: its image is imported from a
# tarball of forge's own `host` image.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

WRITE_DOC=0 RUNS=${RUNS:-30} WARMUP=${WARMUP:-3} IPERF_TIME=${IPERF_TIME:-5} IPERF_REPS=${IPERF_REPS:-5}
for arg in "$@"; do common_arg "$arg" 9,12; done
SRV=netbench-srv # the forge iperf3 server container's name
IMG=localhost/netbench:latest # podman's image, imported from forge's `host` rootfs

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# Wait until the process PID's network namespace has a TCP socket listening on port 5201 (iperf3).
wait_listen() {
  local pid=$1 i
  for ((i = 0; i < 200; i++)); do
    awk '$2 ~ /:1451$/ && $4 == "0A" { found = 1 } END { exit !found }' \
      "/proc/$pid/net/tcp" "/proc/$pid/net/tcp6" 2>/dev/null && return 0
    sleep 0.05
  done
  log "nothing listens on port 5201 in the namespace of pid $pid"
  return 1
}

# ==================================================================================================
# Inner part: runs under `unshare --net --mount --fork`, in namespaces of its own.
# ==================================================================================================
inner() {
  check_private_ns

  # Podman and netavark keep state at fixed places (/run/netns, /run/containers, the image blob
  # cache in /var/lib/containers): give them empty tmpfs's there, visible in this mount namespace
  # only (unshare made its mounts private). The outer part made any missing mount point.
  local d
  for d in /run/netns /run/containers /var/lib/containers; do mount -t tmpfs -o mode=0755 netbench "$d"; done

  FORGE="$FORGE_BIN --root $TMP/root"
  BARE_PIDS=()
  inner_cleanup() {
    $FORGE rm -f "$SRV" >/dev/null 2>&1 || true
    ((${#BARE_PIDS[@]})) && { kill "${BARE_PIDS[@]}" 2>/dev/null || true; wait "${BARE_PIDS[@]}" 2>/dev/null || true; }
    if [[ -n ${PODMAN:-} ]]; then "${PODMAN[@]}" rm -af >/dev/null 2>&1 || true; fi
  }
  trap inner_cleanup EXIT

  # --- Images -------------------------------------------------------------------------------------
  $FORGE image build-host host >&2
  $FORGE image build-host iperf3 --bin iperf3 >&2

  # --- Podman, configured to keep everything under $TMP -----------------------------------------
  local P=$TMP/podman
  mkdir -p "$P"
  cat >"$P/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
tmp_dir = "$P/tmp"
volume_path = "$P/volumes"

[network]
network_backend = "netavark"
network_config_dir = "$P/networks"
EOF
  export CONTAINERS_CONF=$P/containers.conf
  PODMAN=(podman --root "$P/root" --runroot "$P/run" --tmpdir "$P/tmp" --storage-driver overlay
    --cgroup-manager cgroupfs --events-backend file --network-config-dir "$P/networks")
  # Podman's default RLIMIT_NOFILE (1048576) is above the hard limit here, and podman lowers its own
  # RLIMIT_NPROC to 32768: give the container the limits this script has (as forge does), capped.
  local nofile_s nofile_h nproc_h
  nofile_s=$(ulimit -Sn) nofile_h=$(ulimit -Hn) nproc_h=$(ulimit -Hu)
  [[ $nproc_h == unlimited || $nproc_h -gt 32768 ]] && nproc_h=32768
  PODMAN_RUN=(--rm --network bridge --pull never --ulimit "nofile=$nofile_s:$nofile_h"
    --ulimit "nproc=$nproc_h:$nproc_h" --cgroup-parent "$PODMAN_CGROUP_PARENT")
  local why=""
  if ! command -v podman >/dev/null; then
    why="podman is not installed"
  elif [[ ! -x /usr/lib/podman/netavark ]] && ! command -v netavark >/dev/null; then
    why="netavark is not installed"
  else
    tar -C "$TMP/root/images/host/rootfs" -cf "$TMP/rootfs.tar" .
    if ! "${PODMAN[@]}" import "$TMP/rootfs.tar" "$IMG" >"$TMP/podman.log" 2>&1; then
      why="podman import failed: $(tail -1 "$TMP/podman.log")"
    elif ! "${PODMAN[@]}" run "${PODMAN_RUN[@]}" "$IMG" true >"$TMP/podman.log" 2>&1; then
      why="podman run failed: $(tail -1 "$TMP/podman.log")"
    elif [[ $("${PODMAN[@]}" info --format '{{.Host.NetworkBackend}}') != netavark ]]; then
      why="podman's network backend is $("${PODMAN[@]}" info --format '{{.Host.NetworkBackend}}'), not netavark"
    fi
  fi
  if [[ -n $why ]]; then
    log "podman cannot run here, measuring forge alone: $why"
    echo "$why" >"$TMP/podman-missing"
  else
    "${PODMAN[@]}" version --format '{{.Client.Version}}' >"$TMP/podman-version"
    { /usr/lib/podman/netavark --version 2>/dev/null || netavark --version; } | head -1 >"$TMP/netavark-version"
  fi

  # --- Sanity: forge on the default network -----------------------------------------------------
  local t0
  $FORGE run --rm --net bridge host true # creates forge0 and the nftables table on first use
  t0=$(date +%s%N)
  $FORGE run --rm --net bridge host true
  echo "second bridge start-up alone: $(ms "$t0") ms" >>"$TMP/notes"
  nft list ruleset >"$TMP/ruleset-before" 2>/dev/null

  # --- 1. Start-up ---------------------------------------------------------------------------------
  local cmds=(-n "forge run --rm --net bridge host true" "$FORGE run --rm --net bridge host true")
  [[ -n $why ]] || cmds+=(-n "podman run --rm --network bridge IMG true" "${PODMAN[*]} run ${PODMAN_RUN[*]} $IMG true")
  cmds+=(-n "forge run --rm --net none host true" "$FORGE run --rm --net none host true")
  # -N: no intermediate shell (the commands hold no quotes).
  hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$TMP/startup.json" "${cmds[@]}" >&2

  # --- 2. Throughput: two forge containers on the default network -------------------------------
  local ip pid
  t0=$(date +%s%N)
  $FORGE run -d --name "$SRV" --net bridge iperf3 iperf3 -s >/dev/null
  echo "forge run -d (iperf3 server): $(ms "$t0") ms" >>"$TMP/notes"
  ip=$($FORGE inspect "$SRV" | jq -r '.[0].State.ip')
  pid=$($FORGE inspect "$SRV" | jq -r '.[0].State.pid')
  [[ $ip =~ ^[0-9.]+$ ]] || { log "no IPv4 address in forge inspect $SRV: $ip"; exit 1; }
  wait_listen "$pid"

  # --- 2b. The physical limit: bare namespaces and a bridge, no firewall rules --------------------
  # Three `unshare --net` sleepers hold the namespaces: the bridge's and two ends'.
  local holder br na nb
  hold() {
    unshare --net sleep infinity &
    holder=$!
    BARE_PIDS+=("$holder")
    local i
    for ((i = 0; i < 200; i++)); do
      [[ $(readlink "/proc/$holder/ns/net") != "$SELF_NS" ]] && return 0
      sleep 0.01
    done
    log "unshare --net did not make a namespace"; return 1
  }
  hold; br=$holder
  hold; na=$holder
  hold; nb=$holder
  nsenter -t "$br" -n ip link add netbench0 type bridge
  nsenter -t "$br" -n ip link set netbench0 up
  local end n=2
  for end in "$na" "$nb"; do
    nsenter -t "$br" -n ip link add "nb$n" type veth peer name eth0 netns "$end"
    nsenter -t "$br" -n ip link set "nb$n" master netbench0 up
    nsenter -t "$end" -n ip link set lo up
    nsenter -t "$end" -n ip addr add "10.90.0.$n/24" dev eth0
    nsenter -t "$end" -n ip link set eth0 up
    n=$((n + 1))
  done
  nsenter -t "$na" -n iperf3 -s >/dev/null 2>&1 &
  BARE_PIDS+=($!)
  wait_listen "$na"

  # Alternate the two paths so that a noisy moment hits both.
  mkdir "$TMP/iperf"
  local i rc
  for ((i = 1; i <= IPERF_REPS; i++)); do
    rc=0
    $FORGE run --rm --net bridge iperf3 iperf3 -c "$ip" -t "$IPERF_TIME" -J >"$TMP/iperf/forge-$i.json" || rc=$?
    ((rc == 0)) || { log "iperf3 in forge failed ($rc): $(jq -r '.error // empty' "$TMP/iperf/forge-$i.json" 2>/dev/null)"; exit 1; }
    rc=0
    nsenter -t "$nb" -n iperf3 -c 10.90.0.2 -t "$IPERF_TIME" -J >"$TMP/iperf/bare-$i.json" || rc=$?
    ((rc == 0)) || { log "iperf3 between bare namespaces failed ($rc)"; exit 1; }
  done
  echo "forge container eth0: $(nsenter -t "$pid" -n ip link show eth0 | grep -o 'mtu [0-9]*'); bare eth0: $(nsenter -t "$nb" -n ip link show eth0 | grep -o 'mtu [0-9]*')" >>"$TMP/notes"

  # --- Tear down and look for leaks before this namespace goes away ------------------------------
  t0=$(date +%s%N)
  $FORGE rm -f "$SRV" >/dev/null
  echo "forge rm -f (iperf3 server): $(ms "$t0") ms" >>"$TMP/notes"
  kill "${BARE_PIDS[@]}"; wait "${BARE_PIDS[@]}" 2>/dev/null || true
  BARE_PIDS=()

  : >"$TMP/leaks"
  # The kernel deletes a container's veth pair when its namespace goes, asynchronously: give it 2 s.
  local veths
  for ((i = 0; i < 40; i++)); do
    veths=$(ip -o link show type veth | awk -F': ' '{ print $2 }' | xargs)
    [[ -n $veths ]] || break
    sleep 0.05
  done
  [[ -z $veths ]] || echo "veth links left in the benchmark's namespace: $veths" >>"$TMP/leaks"
  [[ -z $(ls -A "$TMP/root/containers" 2>/dev/null) ]] || echo "forge left containers: $(ls "$TMP/root/containers" | xargs)" >>"$TMP/leaks"
  [[ -z $($FORGE ps -q 2>/dev/null) ]] || echo "forge ps lists containers" >>"$TMP/leaks"
  if [[ -z $why ]] && [[ -n $("${PODMAN[@]}" ps -aq) ]]; then echo "podman left containers" >>"$TMP/leaks"; fi
  nft list ruleset >"$TMP/ruleset-after" 2>/dev/null
  # Forge's own table should look as it did before any container ran (netavark's are podman's).
  diff <(sed -n '/^table ip forge/,/^}/p' "$TMP/ruleset-before") \
    <(sed -n '/^table ip forge/,/^}/p' "$TMP/ruleset-after") >"$TMP/ruleset.diff" ||
    echo "forge's nftables table changed over the run: $(grep -c '^[<>]' "$TMP/ruleset.diff") lines (see the diff below)" >>"$TMP/leaks"
  [[ -z $(findmnt -rn -o TARGET | grep "^$TMP/") ]] || echo "mounts left under $TMP: $(findmnt -rn -o TARGET | grep "^$TMP/" | xargs)" >>"$TMP/leaks"
  { echo "links:"; ip -br link; echo "nftables tables:"; nft list tables 2>/dev/null; } >"$TMP/left"
  trap - EXIT
  inner_cleanup
}

if [[ ${BENCH_INNER:-} == 1 ]]; then
  inner
  exit 0
fi

# ==================================================================================================
# Outer part: tools, build, the private namespaces, then the report.
# ==================================================================================================
require_root

# --- Tools ----------------------------------------------------------------------------------------
for cmd in hyperfine podman iperf3 iptables nft ip jq busybox nsenter; do
  if ! command -v "$cmd" >/dev/null || [[ ! -x /usr/lib/podman/netavark ]]; then
    log "installing hyperfine podman netavark iperf3 iptables nftables iproute2 jq busybox-static"
    apt-get update -qq >&2
    # iperf3's debconf question (start a daemon?) defaults to no.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine podman netavark iperf3 iptables \
      nftables iproute2 jq busybox-static >&2 || log "apt-get install failed; going on with what is there"
    break
  fi
done
for cmd in hyperfine iperf3 nft ip jq nsenter unshare; do
  command -v "$cmd" >/dev/null || { log "$cmd is missing"; exit 1; }
done

need_forge

# --- Podman's cgroup parent, below this script's own cgroup in every hierarchy -------------------
podman_cgroup_parent forge-netbench

# --- Private data root, mount points, the run itself ----------------------------------------------
TMP=$(mktemp -d /tmp/forge-netbench.XXXXXX)
make_mount_points /run/netns /run/containers /var/lib/containers
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  # Processes that outlived the benchmark (if it was killed: forge monitors, the bare namespaces'
  # holders), forge's and podman's cgroups, then what the script made.
  kill_leftovers "$TMP/root"
  remove_podman_cgroups
  remove_made_dirs
  remove_tmp
}
trap cleanup EXIT

run_private_ns FORGE_BIN="$FORGE_BIN" PODMAN_CGROUP_PARENT="$PODMAN_CGROUP_PARENT" RUNS="$RUNS" \
  WARMUP="$WARMUP" IPERF_TIME="$IPERF_TIME" IPERF_REPS="$IPERF_REPS"

# --- Report ---------------------------------------------------------------------------------------
podman_ok=1
[[ -f $TMP/podman-missing ]] && podman_ok=0
# jq 1.6 has no printf: format milliseconds with one decimal, ratios with two.
jq_fmt='
  def d1: . * 10 + 0.5 | floor | "\(. / 10 | floor).\(. % 10)";
  def d2: . * 100 + 0.5 | floor | "\(. / 100 | floor).\(. % 100 | if . < 10 then "0\(.)" else "\(.)" end)";'
if ((podman_ok)); then
  startup_table=$(jq -r "$jq_fmt"'
    (.results[] | select(.command | startswith("podman")) | .median) as $podman
    | "| command | median (ms) | mean ± sd (ms) | ratio to podman (median) |",
      "|---|---:|---:|---:|",
      (.results[] | "| `\(.command)` | \(.median * 1000 | d1) | \(.mean * 1000 | d1) ± \(.stddev * 1000 | d1) | \(.median / $podman | d2) |")
  ' "$TMP/startup.json")
  startup_ratio=$(jq -r "$jq_fmt"'.results[0].median / (.results[] | select(.command | startswith("podman")) | .median) | d2' "$TMP/startup.json")
else
  startup_table=$(jq -r "$jq_fmt"'
    "| command | median (ms) | mean ± sd (ms) |", "|---|---:|---:|",
    (.results[] | "| `\(.command)` | \(.median * 1000 | d1) | \(.mean * 1000 | d1) ± \(.stddev * 1000 | d1) |")
  ' "$TMP/startup.json")
  startup_ratio="n/a (podman could not run: $(cat "$TMP/podman-missing"))"
fi

gbits() { jq -r '.end.sum_received.bits_per_second / 1e9' "$@"; }
retrans() { jq -r '.end.sum_sent.retransmits // 0' "$@" | awk '{ s += $1 } END { print s }'; }
fmt2() { awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 }'; }
forge_runs=() bare_runs=()
for ((i = 1; i <= IPERF_REPS; i++)); do
  forge_runs+=("$TMP/iperf/forge-$i.json") bare_runs+=("$TMP/iperf/bare-$i.json")
done
forge_med=$(gbits "${forge_runs[@]}" | median)
bare_med=$(gbits "${bare_runs[@]}" | median)
# Tests ran in pairs (forge, then bare) and the machine's speed drifts: the median of the pairs'
# ratios is the headline; the ratio of the medians is shown too.
paired_ratio=$(paste <(gbits "${forge_runs[@]}") <(gbits "${bare_runs[@]}") | awk '{ print $1 / $2 }' | median | fmt2)
medians_ratio=$(awk -v f="$forge_med" -v b="$bare_med" 'BEGIN { printf "%.2f", f / b }')
throughput_table=$(
  echo "| path | Gbit/s (median of $IPERF_REPS) | each test, in order (Gbit/s) | TCP retransmits (all tests) | ratio of medians |"
  echo "|---|---:|---:|---:|---:|"
  echo "| forge container → forge container (forge0, \`--net bridge\`) | $(echo "$forge_med" | fmt2) | $(gbits "${forge_runs[@]}" | fmt2) | $(retrans "${forge_runs[@]}") | $medians_ratio |"
  echo "| bare namespace → bare namespace (hand-made bridge) | $(echo "$bare_med" | fmt2) | $(gbits "${bare_runs[@]}" | fmt2) | $(retrans "${bare_runs[@]}") | 1.00 |"
)

echo "$startup_table"
echo
echo "forge/podman start-up median ratio (bridge): $startup_ratio (target: at most 0.1)"
echo
echo "$throughput_table"
echo
echo "forge/bare TCP throughput, median of the paired tests' ratios: $paired_ratio (target: at least 0.95)"
echo
cat "$TMP/notes"
echo "left in the benchmark's namespace at its end (forge0 and forge's table stay by design):"
sed 's/^/  /' "$TMP/left"

leaks=0
if [[ -s $TMP/leaks ]]; then
  leaks=1
  while read -r line; do log "LEAK: $line"; done <"$TMP/leaks"
  [[ -s $TMP/ruleset.diff ]] && cat "$TMP/ruleset.diff" >&2
fi

if ((WRITE_DOC)) && ((leaks == 0)); then
  doc=$REPO/docs/benchmarks.md
  title="## Networking"
  if ((podman_ok)); then
    versions="podman $(cat "$TMP/podman-version") with $(cat "$TMP/netavark-version") and $(runc --version | head -1)"
  else
    versions="podman could not run: $(cat "$TMP/podman-missing")"
  fi
  section=$TMP/section.md
  cat >"$section" <<EOF
$title

Reproduce: \`sudo bench/network.sh --write-doc\` — hyperfine $(hyperfine --version | cut -d' ' -f2), \`-N\`,
$WARMUP warm-up runs then $RUNS runs of each command, one after another in one hyperfine run; then
$IPERF_REPS iperf3 tests of ${IPERF_TIME} s per path, alternating ($(iperf3 --version | head -1 | cut -d' ' -f1-2)).
$(machine_line)
$(cgroup_line); $(date -u +%Y-%m-%d); forge $(forge_rev),
$versions.

### Start-up on the default network

$startup_table

forge/podman median ratio: **$startup_ratio** (target: at most 0.1).

### TCP throughput between two containers

$throughput_table

forge/bare ratio, median of the $IPERF_REPS paired tests' ratios: **$paired_ratio** (target: at least 0.95).

- Everything runs in a network and a mount namespace that the script makes (\`unshare --net
  --mount --fork\`): forge0, podman0, their veths and firewall rules never touch the host's.
- Same root filesystem: podman's image is \`podman import\` of a tarball of forge's \`host\` image
  (busybox applets), with \`--pull never\`. Podman uses overlay storage, runtime and state in a
  temporary directory, cgroupfs, the file events backend and \`--cgroup-parent\` below the script's
  cgroup. \`--ulimit nofile\` is the script's own limit, \`--ulimit nproc\` at most 32768: podman's
  default RLIMIT_NOFILE (1048576) is above the hard limit here (no CAP_SYS_RESOURCE), and given
  nofile alone it asks for RLIMIT_NPROC 1048576, above the 32768 that podman lowers its own to;
  runc fails to set either. Forge containers inherit the caller's limits.
- Each command runs one after another in the same run: compare the ratios; on a busy machine the
  medians move between runs of the script.
- Both make a veth pair and take an address from their IPAM per container. Forge keeps forge0 and
  its nftables table between containers; netavark creates podman0 and the network's iptables rules
  when the first container starts and deletes both after the last one leaves, so here in every run.
- Throughput: \`forge run -d --name $SRV --net bridge iperf3 iperf3 -s\` and
  \`forge run --rm --net bridge iperf3 iperf3 -c IP -t $IPERF_TIME -J\`, image
  \`forge image build-host iperf3 --bin iperf3\`; received bits per second. The limit: three
  namespaces held by \`unshare --net\`, a bridge in one, veth pairs to the two others, no firewall
  rules, the same MTU (1500), iperf3 run with \`nsenter -n\`.
EOF
  replace_doc_section "$doc" "$title" "$section" "$TMP"
  log "wrote $title to $doc"
fi
exit "$leaks"
