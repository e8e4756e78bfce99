#!/usr/bin/env bash
# Volumes benchmark (issue 14): what three volumes cost at start-up, and how fast a container writes
# into a volume against the host directory underneath it.
#   1. start-up: `forge run --rm --net none host true` with no mount, with three named volumes,
#      with three binds and with one sized volume (`--opt size=`, an ext4 disk on a loop device),
#      side by side in one hyperfine run (goal: three volumes at most 1 ms more, median);
#   2. sequential write: GNU dd of 256 MiB with fsync into a named volume from inside a
#      container, and into the volume's own directory from the host, alternating, RUNS_WRITE times
#      each (goal: at least 0.95x the host's throughput, median); a sized volume too, for scale.
# Prints markdown tables; --write-doc rewrites the "Volumes" section of docs/benchmarks.md.
#
# Usage: sudo bench/volumes.sh [--write-doc]
# Env: FORGE_BIN (skip the cargo build), RUNS (default 50), WARMUP (default 5), RUNS_WRITE
#      (default 7), WRITE_MIB (default 256).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

WRITE_DOC=0 RUNS=${RUNS:-50} WARMUP=${WARMUP:-5} RUNS_WRITE=${RUNS_WRITE:-7} WRITE_MIB=${WRITE_MIB:-256}
for arg in "$@"; do common_arg "$arg" 12,14; done
require_root

for cmd in hyperfine busybox jq mkfs.ext4 debugfs; do
  if ! command -v "$cmd" >/dev/null; then
    log "installing hyperfine busybox-static jq e2fsprogs"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine busybox-static jq e2fsprogs >&2
    break
  fi
done
need_forge

TMP=$(mktemp -d /tmp/forge-bench.XXXXXX)
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  # shellcheck disable=SC2046 # one argument per container id
  $FORGE rm -f $($FORGE ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  remove_tmp
}
trap cleanup EXIT
FORGE="$FORGE_BIN --root $TMP/root"
$FORGE image build-host host >&2
# GNU dd reports its own time (busybox's does not, here); the same binary on both sides.
$FORGE image build-host --bin dd --bin sh --bin rm gnu >&2
for v in v1 v2 v3; do $FORGE volume create "$v" >/dev/null; done
$FORGE volume create --opt size=1g sized >/dev/null
mkdir -p "$TMP"/bind{1,2,3}

# --- 1. Start-up ----------------------------------------------------------------------------------
RUN="$FORGE run --rm --net none"
VOLS="-v v1:/v1 -v v2:/v2 -v v3:/v3"
BINDS="-v $TMP/bind1:/b1 -v $TMP/bind2:/b2 -v $TMP/bind3:/b3"
log "start-up: $RUNS runs of each after $WARMUP warm-up runs"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$TMP/startup.json" \
  "$RUN host true" "$RUN $VOLS host true" "$RUN $BINDS host true" "$RUN -v sized:/s host true" >&2
ms() { jq -r --argjson i "$1" ".results[\$i].$2 * 1000 | . * 10 | round / 10" "$TMP/startup.json"; }
base=$(ms 0 median)
startup_table() {
  local labels=("no mount" "three named volumes (\`-v v1:/v1 -v v2:/v2 -v v3:/v3\`)"
    "three binds (\`-v DIR:/b1 ...\`)" "one sized volume (\`--opt size=1g\`, ext4 on a loop device)")
  echo "| \`forge run --rm --net none host true\` with | median (ms) | mean ± sd (ms) | median − no mount (ms) |"
  echo "|---|---:|---:|---:|"
  for i in 0 1 2 3; do
    local med mean sd
    med=$(ms "$i" median) mean=$(ms "$i" mean) sd=$(ms "$i" stddev)
    echo "| ${labels[$i]} | $med | $mean ± $sd | $(awk -v a="$med" -v b="$base" 'BEGIN { printf "%+.1f", a - b }') |"
  done
}

# --- 2. Sequential write --------------------------------------------------------------------------
# GNU dd's last line: "N bytes (...) copied, S s, ..."; the seconds.
DD="dd if=/dev/zero of=FILE bs=1M count=$WRITE_MIB conv=fsync"
seconds() { tail -1 | sed -nE 's/.*copied, ([0-9.]+) s,.*/\1/p'; }
host_dir=$TMP/root/volumes/v1/_data
: >"$TMP/host.s" && : >"$TMP/volume.s" && : >"$TMP/sized.s"
log "write: $RUNS_WRITE x $WRITE_MIB MiB with fsync into each, alternating"
for ((i = 0; i < RUNS_WRITE; i++)); do
  ${DD/FILE/$host_dir/f} 2>&1 | seconds >>"$TMP/host.s"
  rm -f "$host_dir/f"
  $RUN -v v1:/d gnu sh -c "${DD/FILE//d/f} 2>&1; rm /d/f" | seconds >>"$TMP/volume.s"
  $RUN -v sized:/d gnu sh -c "${DD/FILE//d/f} 2>&1; rm /d/f" | seconds >>"$TMP/sized.s"
done
mibs() { median <"$TMP/$1.s" | awk -v m="$WRITE_MIB" '{ printf "%.0f", m / $1 }'; }
host_mibs=$(mibs host)
write_table() {
  echo "| \`dd bs=1M count=$WRITE_MIB conv=fsync\` | median (MiB/s) | ratio to the host |"
  echo "|---|---:|---:|"
  local which label
  for which in host volume sized; do
    case $which in
      host) label="from the host into the volume's directory (\`_data\`)" ;;
      volume) label="from a container into the named volume (\`-v v1:/d\`)" ;;
      sized) label="from a container into a sized volume (ext4 in a file on the same disk)" ;;
    esac
    echo "| $label | $(mibs $which) | $(awk -v a="$(mibs $which)" -v b="$host_mibs" 'BEGIN { printf "%.2f", a / b }') |"
  done
}

# --- Report ---------------------------------------------------------------------------------------
report() {
  echo "## Volumes"
  echo
  echo "Reproduce: \`sudo bench/volumes.sh --write-doc\` — $(hyperfine --version), \`-N\`,"
  echo "$WARMUP warm-up runs then $RUNS runs of each start-up, one after another in one hyperfine run;"
  echo "$RUNS_WRITE writes of each kind, alternating. $(machine_line)"
  echo "$(cgroup_line); $(date -u +%F); forge $(forge_rev); data root on $(findmnt -no FSTYPE -T "$TMP")."
  echo
  startup_table
  echo
  write_table
  echo
  echo "- The volumes exist before the run (\`forge volume create\`), so a start pays for taking the"
  echo "  volume store's lock, reading each volume's record and one bind per volume in the"
  echo "  container's mount namespace, resolved inside its root (openat2), with copy-up checked."
  echo "- A named volume is a bind of a directory on the data root's filesystem, so a container"
  echo "  writes to the same filesystem as the host does; the sized volume adds a loop device and"
  echo "  an ext4 filesystem in a file on it."
}
report | tee "$TMP/section.md"
if ((WRITE_DOC)); then
  replace_doc_section "$REPO/docs/benchmarks.md" "## Volumes" "$TMP/section.md" "$TMP"
  log "wrote the Volumes section of docs/benchmarks.md"
fi
