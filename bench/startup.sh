#!/usr/bin/env bash
# Start-up benchmark: `forge run --rm host true` against `runc run` of an OCI bundle made from the
# same root filesystem, with bare `unshare` of the same namespaces as the floor, side by side in one
# hyperfine run. Prints a markdown table; --write-doc rewrites its section of docs/benchmarks.md.
#
# Usage: sudo bench/startup.sh [--limits] [--write-doc]
#   --limits     also apply --cpus 1 --memory 256m --pids-limit 100 (and the same in runc's config)
#   --write-doc  rewrite the "Start-up" (or "Start-up with limits") section of docs/benchmarks.md
# Env: FORGE_BIN (skip the cargo build), RUNS (default 50), WARMUP (default 5), FORGE_BASE_BIN
#      (another forge build, e.g. of the commit before a change, timed in the same run).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

LIMITS=0 WRITE_DOC=0 RUNS=${RUNS:-50} WARMUP=${WARMUP:-5}
for arg in "$@"; do
  case $arg in
    --limits) LIMITS=1 ;;
    *) common_arg "$arg" 6,9 ;;
  esac
done
require_root

# --- Tools ----------------------------------------------------------------------------------------
for cmd in hyperfine runc busybox jq; do
  if ! command -v "$cmd" >/dev/null; then
    log "installing hyperfine runc busybox-static jq"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine runc busybox-static jq >&2
    break
  fi
done

need_forge

FORGE_LIMITS=""
if ((LIMITS)); then
  if ! "$FORGE_BIN" run --help | grep -q -- '--cpus'; then
    echo "forge has no limit flags yet; skipping --limits"
    exit 0
  fi
  FORGE_LIMITS="--cpus 1 --memory 256m --pids-limit 100"
fi

# --- Private data root, image and runc bundle -----------------------------------------------------
TMP=$(mktemp -d /tmp/forge-bench.XXXXXX)
ID=forge-bench-$$ # one runc container id, reused: foreground `runc run` deletes it on exit
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  runc delete -f "$ID" >/dev/null 2>&1 || true
  remove_tmp
}
trap cleanup EXIT

FORGE="$FORGE_BIN --root $TMP/root"
$FORGE image build-host host >&2
ROOTFS=$TMP/root/images/host/rootfs

mkdir "$TMP/bundle"
(cd "$TMP/bundle" && runc spec)
# Point runc at forge's image rootfs, read-only: runc then needs no overlay, whereas forge mounts
# one (a writable layer per container) on top, so forge does strictly more work. Keep the rest of
# runc spec's defaults: namespaces pid, network, ipc, uts, mount; default cgroup; masked and
# read-only paths; no seccomp profile.
filter='.root = {path: $rootfs, readonly: true} | .process.args = ["true"] | .process.terminal = false'
if ((LIMITS)); then
  filter+=' | .linux.resources += {cpu: {quota: 100000, period: 100000},
                                   memory: {limit: 268435456}, pids: {limit: 100}}'
fi
jq --arg rootfs "$ROOTFS" "$filter" "$TMP/bundle/config.json" >"$TMP/config.json"
mv "$TMP/config.json" "$TMP/bundle/config.json"
jq -e '[.linux.namespaces[].type] | contains(["pid", "mount", "uts", "ipc", "network"])' \
  "$TMP/bundle/config.json" >/dev/null || { log "runc spec lacks a namespace we compare"; exit 1; }

# --- Measure --------------------------------------------------------------------------------------
UNSHARE="unshare --pid --fork --mount --uts --ipc --net true"
# --net none: runc's bundle has a network namespace with only lo too (bench/network.sh measures
# the bridge). -N: no intermediate shell. Names keep temp paths out of the table.
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$TMP/startup.json" \
  -n "forge run --rm --net none ${FORGE_LIMITS:+$FORGE_LIMITS }host true" "$FORGE run --rm --net none $FORGE_LIMITS host true" \
  -n "runc run --bundle BUNDLE ID" "runc run --bundle $TMP/bundle $ID" \
  -n "$UNSHARE" "$UNSHARE" \
  ${FORGE_BASE_BIN:+-n "base: forge run --rm --net none ${FORGE_LIMITS:+$FORGE_LIMITS }host true"} \
  ${FORGE_BASE_BIN:+"$FORGE_BASE_BIN --root $TMP/root run --rm --net none $FORGE_LIMITS host true"} >&2

# Nothing may be left behind: a leak would also skew later runs.
leaks=0
[[ -z $(runc list -q) ]] || { log "runc list is not empty: $(runc list -q | xargs)"; leaks=1; }
[[ -z $(ls -A "$TMP/root/containers") ]] || { log "forge left containers behind"; leaks=1; }
[[ -z $(findmnt -rn -o TARGET | grep "^$TMP/") ]] || { log "mounts left under $TMP"; leaks=1; }

# --- Report ---------------------------------------------------------------------------------------
# Results come in hyperfine's order: forge, runc, unshare.
# jq 1.6 has no printf: format milliseconds with one decimal, ratios with two.
table=$(jq -r '
  def d1: . * 10 + 0.5 | floor | "\(. / 10 | floor).\(. % 10)";
  def d2: . * 100 + 0.5 | floor | "\(. / 100 | floor).\(. % 100 | if . < 10 then "0\(.)" else "\(.)" end)";
  .results[1].median as $runc
  | "| command | median (ms) | mean ± sd (ms) | ratio to runc (median) |",
    "|---|---:|---:|---:|",
    (.results[] | "| `\(.command)` | \(.median * 1000 | d1) | \(.mean * 1000 | d1) ± \(.stddev * 1000 | d1) | \(.median / $runc | d2) |")
' "$TMP/startup.json")
ratio=$(jq -r '.results[0].median / .results[1].median | . * 100 + 0.5 | floor | . / 100' "$TMP/startup.json")
echo "$table"
echo
echo "forge/runc median ratio: $ratio (target: at most 0.5)"
if [[ -n ${FORGE_BASE_BIN:-} ]]; then
  echo "forge/base median ratio: $(jq -r '.results[0].median / .results[3].median | . * 100 + 0.5 | floor | . / 100' "$TMP/startup.json")"
fi

if ((WRITE_DOC)) && ((leaks == 0)); then
  doc=$REPO/docs/benchmarks.md
  title="## Start-up" args="--write-doc"
  ((LIMITS)) && title="## Start-up with limits" args="--limits --write-doc"
  runc_version=$(runc --version | head -1)
  section=$TMP/section.md
  cat >"$section" <<EOF
$title

Reproduce: \`sudo bench/startup.sh $args\` — hyperfine $(hyperfine --version | cut -d' ' -f2), \`-N\`,
$WARMUP warm-up runs then $RUNS runs of each command, one after another in one hyperfine run.
$(machine_line)
$(cgroup_line); $(date -u +%Y-%m-%d); forge $(forge_rev), $runc_version.

$table

forge/runc median ratio: **$ratio** (target in issue 2: at most 0.5).

- Same root filesystem: the runc bundle's \`root.path\` is forge's image rootfs, mounted read-only,
  so runc needs no overlay. Forge additionally mounts an overlay (a per-container writable layer)
  over it and removes it again (\`--rm\`), so it does strictly more work here.
- runc uses \`runc spec\`'s defaults otherwise: namespaces pid, network, ipc, uts, mount;
  \`/proc\`, \`/dev\`, \`/sys\` mounts; only \`args\`, \`terminal\` and \`root\` are changed.
- Both create cgroups for every container, with or without limits (on cgroup v1 runc uses every
  hierarchy, Forge cpu, cpuacct, memory, pids, freezer and the unified one); \`--limits\` adds writes.
- \`unshare\` of the same namespaces, with no root filesystem, mounts or cgroup, is the floor.
EOF
  replace_doc_section "$doc" "$title" "$section" "$TMP"
  log "wrote $title to $doc"
fi
exit "$leaks"
