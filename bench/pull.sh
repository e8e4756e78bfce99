#!/usr/bin/env bash
# Pull benchmark, in one run: `forge pull` plus the first `forge run` of a multi-layer image from a
# local registry, against `skopeo copy` of the same image to an OCI layout followed by
# `umoci unpack` to a bundle, side by side in one hyperfine run, each starting from empty stores.
# The pulls alone (`forge pull`, `skopeo copy`) are timed in the same run too. Prints a markdown
# table; --write-doc rewrites the "Pull" (or "Pull, stores on disk") section of docs/benchmarks.md.
#
# Usage: sudo bench/pull.sh [--on-disk] [--write-doc]
#   --on-disk    keep the stores (forge's root, skopeo's layout, umoci's bundle) on a fresh ext4
#                file system (a loop device on a sparse file in the temporary directory) instead
#                of a tmpfs
#   --write-doc  rewrite the "Pull" (or "Pull, stores on disk") section of docs/benchmarks.md
# Env: FORGE_BIN (skip the cargo build), RUNS (default 10), WARMUP (default 1),
#      DATA_MB (MiB of random, incompressible files in the image's second layer, default 8).
#
# The registry (Debian's `docker-registry`, filesystem storage on a tmpfs, plain HTTP on
# 127.0.0.1), forge, skopeo and umoci all run in a private network and mount namespace that this
# script makes (it re-executes itself under `unshare --net --mount --fork`): no traffic leaves it,
# its tmpfs's are seen only there (skopeo's blob-info cache in /var/lib/containers is one), and
# everything else it writes is under one temporary directory, removed at the end.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

ON_DISK=${PULLBENCH_ON_DISK:-0} WRITE_DOC=0 RUNS=${RUNS:-10} WARMUP=${WARMUP:-1} DATA_MB=${DATA_MB:-8}
for arg in "$@"; do
  case $arg in
    --on-disk) ON_DISK=1 ;;
    *) common_arg "$arg" 8,13 ;;
  esac
done
PORT=5000 # inside the private network namespace, where nothing else listens
REF=127.0.0.1:$PORT/bench:v1

# ==================================================================================================
# Inner part: runs under `unshare --net --mount --fork`, in namespaces of its own.
# ==================================================================================================
inner() {
  check_private_ns
  # skopeo (containers/image) keeps a blob-info cache in /var/lib/containers/cache: an empty tmpfs
  # there, in this mount namespace only (unshare made its mounts private).
  mount -t tmpfs -o mode=0755 pullbench /var/lib/containers
  # The image's sources and the registry's storage: a tmpfs. The stores that every timed run
  # empties and fills: a tmpfs too, or with --on-disk a fresh ext4 (mkfs.ext4's defaults, with a
  # journal) on a loop device, mounted here only; the mount sets autoclear, so the loop device
  # goes when the mount does, at the latest when this namespace ends. Not /tmp's own file system:
  # on ext4 without a journal (these machines' root) each new inode costs up to ~1 ms of CPU
  # while many were deleted in the last minutes, anywhere on the machine (find_inode_bit's
  # recently_deleted check), which made the results depend on what else ran.
  mount -t tmpfs -o mode=0700 pullbench-src "$TMP/src"
  mkdir "$TMP/src/image" "$TMP/src/registry"
  if ((ON_DISK)); then
    truncate -s 4G "$TMP/disk.img"
    mkfs.ext4 -q -F "$TMP/disk.img"
    mount -o loop "$TMP/disk.img" "$TMP/stores"
    chmod 0700 "$TMP/stores"
  else
    mount -t tmpfs -o mode=0700 pullbench-stores "$TMP/stores"
  fi
  export TMPDIR=$TMP/stores/tmp
  mkdir -p "$TMPDIR"

  FORGE="$FORGE_BIN --root $TMP/stores/forge"
  REGISTRY_PID=""
  inner_cleanup() {
    local id
    for id in $($FORGE ps -aq 2>/dev/null); do $FORGE rm -f "$id" >/dev/null 2>&1 || true; done
    if [[ -n $REGISTRY_PID ]]; then
      kill "$REGISTRY_PID" 2>/dev/null || true
      wait "$REGISTRY_PID" 2>/dev/null || true
    fi
  }
  trap inner_cleanup EXIT

  # --- The image: four layers made with umoci from busybox-static --------------------------------
  # 1: busybox and a symlink per applet; 2: DATA_MB MiB of random files (incompressible);
  # 3: 1000 small text files in 100 directories; 4: deletes two of the random files and one
  # directory of small files (whiteouts), replaces another directory (opaque) and adds a file.
  log "building a four-layer image with umoci"
  (
    cd "$TMP/src/image"
    umoci init --layout lay
    umoci new --image lay:v1
    umoci config --image lay:v1 --config.env PATH=/bin --config.cmd /bin/sh
    umoci unpack --image lay:v1 b >/dev/null
    mkdir -p b/rootfs/bin
    cp "$(command -v busybox)" b/rootfs/bin/busybox
    for applet in $(busybox --list); do
      [[ $applet == busybox ]] || ln -s busybox "b/rootfs/bin/$applet"
    done
    umoci repack --refresh-bundle --image lay:v1 b
    mkdir b/rootfs/data
    for ((i = 0; i < DATA_MB; i++)); do head -c 1048576 /dev/urandom >"b/rootfs/data/r$i"; done
    umoci repack --refresh-bundle --image lay:v1 b
    for ((d = 0; d < 100; d++)); do
      mkdir -p "b/rootfs/small/d$d"
      for ((f = 0; f < 10; f++)); do
        head -c 768 /dev/urandom | base64 >"b/rootfs/small/d$d/f$f.txt"
      done
    done
    umoci repack --refresh-bundle --image lay:v1 b
    rm b/rootfs/data/r0 b/rootfs/data/r1
    rm -rf b/rootfs/small/d0 b/rootfs/small/d1
    mkdir b/rootfs/small/d1
    echo replaced >b/rootfs/small/d1/only.txt
    echo v1 >b/rootfs/version
    umoci repack --refresh-bundle --image lay:v1 b
    rm -rf b
  ) >&2

  # --- The registry ------------------------------------------------------------------------------
  cat >"$TMP/src/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $TMP/src/registry/storage
http:
  addr: 127.0.0.1:$PORT
  secret: forge-pull-bench
EOF
  docker-registry serve "$TMP/src/registry/config.yml" </dev/null >"$TMP/src/registry/log" 2>&1 &
  REGISTRY_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$PORT/v2/" && break
    kill -0 "$REGISTRY_PID" 2>/dev/null ||
      { log "docker-registry exited:"; cat "$TMP/src/registry/log" >&2; exit 1; }
    sleep 0.05
  done
  ((i < 200)) || { log "docker-registry does not answer on 127.0.0.1:$PORT"; exit 1; }
  skopeo copy -q --dest-tls-verify=false "oci:$TMP/src/image/lay:v1" "docker://$REF" >&2
  curl -sf --noproxy '*' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:$PORT/v2/bench/manifests/v1" >"$TMP/manifest.json"

  # --- Sanity: both sides see exactly the same files ---------------------------------------------
  local F=$TMP/stores/forge S=$TMP/stores/skopeo B=$TMP/stores/bundle
  local listing='cd / && find bin data small version | sort | while read -r p; do
      if [ -L "$p" ]; then echo "$p -> $(readlink "$p")"; elif [ -f "$p" ]; then echo "$p $(md5sum <"$p")"; else echo "$p/"; fi
    done'
  local t0 t1 t2 line
  t0=$(date +%s%N)
  # The pull's progress lines, each stamped with the milliseconds since the pull started.
  $FORGE pull "$REF" 2>&1 | while IFS= read -r line; do
    echo "$((($(date +%s%N) - t0) / 1000000)) ms: $line"
  done >"$TMP/pull-progress"
  t1=$(date +%s%N)
  $FORGE run --rm --net none "$REF" sh -c "$listing" >"$TMP/forge-files"
  t2=$(date +%s%N)
  echo "$(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000))" >"$TMP/sanity-times"
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$S:v1" >&2
  umoci unpack --image "$S:v1" "$B" >/dev/null
  chroot "$B/rootfs" /bin/sh -c "$listing" >"$TMP/umoci-files"
  if ! diff -u "$TMP/umoci-files" "$TMP/forge-files" >"$TMP/files.diff"; then
    log "forge's container and umoci's bundle differ (- umoci, + forge):"
    head -40 "$TMP/files.diff" >&2
    exit 1
  fi
  grep -qE '^(data/r0|data/r1|small/d0)( |/|$)|^small/d1/f' "$TMP/forge-files" &&
    { log "a whiteout did not hide its file"; exit 1; }
  grep -q '^small/d1/only.txt ' "$TMP/forge-files" || { log "small/d1/only.txt is missing"; exit 1; }
  wc -l <"$TMP/forge-files" >"$TMP/file-count"
  du -sk --apparent-size "$F/blobs" | cut -f1 >"$TMP/forge-blobs-kib"
  du -sk "$F/layers" | cut -f1 >"$TMP/forge-layers-kib"
  if ((ON_DISK)); then
    echo "a fresh $(findmnt -n -o FSTYPE -T "$F") (journalled) on a loop device" >"$TMP/stores-fs"
  else
    findmnt -n -o FSTYPE -T "$F" >"$TMP/stores-fs"
  fi

  # --- Measure -----------------------------------------------------------------------------------
  # Every timed run starts from empty stores: forge's data root (its run root is ROOT/run) and
  # skopeo's layout and umoci's bundle. The registry's blobs stay in the page cache for both.
  local clear_forge="rm -rf --one-file-system $F" clear_peer="rm -rf --one-file-system $S $B"
  # hyperfine sends the commands' output to /dev/null.
  local forge_cmd="$FORGE pull $REF && $FORGE run --rm --net none $REF true"
  hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$TMP/pull.json" \
    --prepare "$clear_forge" -n "forge pull REF && forge run --rm --net none REF true" "$forge_cmd" \
    --prepare "$clear_peer" -n "skopeo copy docker://REF oci:DIR:v1 && umoci unpack --image DIR:v1 BUNDLE" \
    "skopeo copy -q --src-tls-verify=false docker://$REF oci:$S:v1 && umoci unpack --image $S:v1 $B" \
    --prepare "$clear_forge" -n "forge pull REF" "$FORGE pull $REF" \
    --prepare "$clear_peer" -n "skopeo copy docker://REF oci:DIR:v1" \
    "skopeo copy -q --src-tls-verify=false docker://$REF oci:$S:v1" >&2

  # Nothing may be left behind: a leak would also skew later runs.
  : >"$TMP/leaks"
  [[ -z $(ls -A "$F/containers" 2>/dev/null) ]] || echo "forge left containers behind" >>"$TMP/leaks"
  # (the script's own tmpfs's aside)
  local left
  left=$(findmnt -rn -o TARGET | { grep "^$TMP/" || true; } | { grep -vx -e "$TMP/src" -e "$TMP/stores" || true; } | xargs)
  [[ -z $left ]] || echo "mounts left under $TMP: $left" >>"$TMP/leaks"
  kill -0 "$REGISTRY_PID" 2>/dev/null || echo "the registry died during the benchmark" >>"$TMP/leaks"
}

if [[ ${BENCH_INNER:-} == 1 ]]; then
  inner
  exit 0
fi

# ==================================================================================================
# Outer part: tools, build, temporary directory, then the inner part in private namespaces.
# ==================================================================================================
require_root

for cmd in hyperfine docker-registry skopeo umoci busybox jq curl; do
  if ! command -v "$cmd" >/dev/null; then
    log "installing hyperfine docker-registry skopeo umoci busybox-static jq curl"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine docker-registry skopeo umoci \
      busybox-static jq curl >&2
    break
  fi
done
((ON_DISK == 0)) || command -v mkfs.ext4 >/dev/null || { log "--on-disk needs mkfs.ext4 (e2fsprogs)"; exit 1; }
# skopeo refuses to copy without a signature policy; Debian's containers-common ships one.
[[ -f /etc/containers/policy.json ]] || { log "/etc/containers/policy.json is missing (containers-common)"; exit 1; }

# What the report calls the forge it measured: the checkout it built, or a binary it was given.
FORGE_REV=$(forge_rev)
[[ -z ${FORGE_BIN:-} ]] || FORGE_REV="binary given by FORGE_BIN (checkout: $FORGE_REV)"
need_forge

TMP=$(mktemp -d /tmp/forge-bench-pull.XXXXXX)
mkdir "$TMP/src" "$TMP/stores"
make_mount_points /var/lib/containers
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  # Processes that outlived the benchmark (if it was killed: the registry, a forge container) and
  # forge's cgroups, then what the script made.
  kill_leftovers "$TMP/stores/forge"
  remove_made_dirs
  remove_tmp
}
trap cleanup EXIT

run_private_ns FORGE_BIN="$FORGE_BIN" RUNS="$RUNS" WARMUP="$WARMUP" DATA_MB="$DATA_MB" \
  PULLBENCH_ON_DISK="$ON_DISK"

# --- Report ---------------------------------------------------------------------------------------
# Results come in hyperfine's order: forge pull+run, skopeo+umoci, forge pull, skopeo copy.
# jq 1.6 has no printf: format milliseconds with one decimal, ratios with two.
jq_fmt='
  def d1: . * 10 + 0.5 | floor | "\(. / 10 | floor).\(. % 10)";
  def d2: . * 100 + 0.5 | floor | "\(. / 100 | floor).\(. % 100 | if . < 10 then "0\(.)" else "\(.)" end)";'
table=$(jq -r "$jq_fmt"'
  .results as $r
  | "| command | median (ms) | mean ± sd (ms) | min – max (ms) | ratio to its peer (median) |",
    "|---|---:|---:|---:|---:|",
    ($r | to_entries[] | .key as $i | .value
     | "| `\(.command)` | \(.median * 1000 | d1) | \(.mean * 1000 | d1) ± \(.stddev * 1000 | d1) | \(.min * 1000 | d1) – \(.max * 1000 | d1) | \(if $i % 2 == 0 then .median / $r[$i + 1].median | d2 else "1.00" end) |")
' "$TMP/pull.json")
ratio=$(jq -r "$jq_fmt"'.results[0].median / .results[1].median | d2' "$TMP/pull.json")
pull_ratio=$(jq -r "$jq_fmt"'.results[2].median / .results[3].median | d2' "$TMP/pull.json")
# Differences of medians may come out negative on a noisy machine: awk formats the sign.
run_ms=$(jq -r '(.results[0].median - .results[2].median) * 1000' "$TMP/pull.json" | awk '{ printf "%.1f", $1 }')
unpack_ms=$(jq -r '(.results[1].median - .results[3].median) * 1000' "$TMP/pull.json" | awk '{ printf "%.1f", $1 }')
layers=$(jq -r '.layers | length' "$TMP/manifest.json")
layer_sizes=$(jq -r '[.layers[].size / 1024 | floor | "\(.) KiB"] | join(", ")' "$TMP/manifest.json")
read -r sanity_pull sanity_run <"$TMP/sanity-times"
# From the untimed pull's stamped progress lines: when the last layer was in, and when it was done.
downloaded_ms=$(awk '/: unpacking$/ { print $1 }' "$TMP/pull-progress")
stores_fs=$(cat "$TMP/stores-fs")

echo "$table"
echo
echo "forge/(skopeo+umoci) median ratio: $ratio (target: at most 0.5)"
echo "pull alone: forge/skopeo median ratio $pull_ratio; first run after the pull ≈ $run_ms ms;" \
  "umoci unpack ≈ $unpack_ms ms (differences of medians)"
echo "image: $layers layers of $layer_sizes (gzip); $(cat "$TMP/file-count") paths in the container;" \
  "forge's store after the pull: blobs $(cat "$TMP/forge-blobs-kib") KiB, unpacked layers $(cat "$TMP/forge-layers-kib") KiB"
echo "stores on $stores_fs; untimed sanity pull: $sanity_pull ms (all layers downloaded after ≈ $downloaded_ms ms,"\
  "then unpacked), then a run listing every file: $sanity_run ms; the pull's progress lines:"
sed 's/^/  /' "$TMP/pull-progress"

leaks=0
if [[ -s $TMP/leaks ]]; then
  leaks=1
  while read -r line; do log "LEAK: $line"; done <"$TMP/leaks"
fi

if ((WRITE_DOC)) && ((leaks == 0)); then
  doc=$REPO/docs/benchmarks.md
  title="## Pull" args="--write-doc"
  ((ON_DISK)) && title="## Pull, stores on disk" args="--on-disk --write-doc"
  section=$TMP/section.md
  cat >"$section" <<EOF
$title

Reproduce: \`sudo bench/pull.sh $args\` — hyperfine $(hyperfine --version | cut -d' ' -f2),
$WARMUP warm-up run(s) then $RUNS runs of each command, one after another in one hyperfine run,
each run from empty stores (\`--prepare\`); stores on $stores_fs.
$(machine_line)
$(cgroup_line); $(date -u +%Y-%m-%d); forge $FORGE_REV,
$(skopeo --version), umoci $(umoci --version | awk '{ print $3 }'), docker-registry $(docker-registry --version | awk '{ print $3 }').

$table

forge/(skopeo + umoci) median ratio: **$ratio** (target in issue 6: at most 0.5).
The pulls alone: forge/skopeo **$pull_ratio**. By difference of medians, forge's first run after
its pull takes ≈ $run_ms ms and \`umoci unpack\` ≈ $unpack_ms ms. In an untimed pull before
these runs forge had every layer after ≈ $downloaded_ms ms of its $sanity_pull ms.

- The image: $layers layers made with umoci from busybox-static, gzip-compressed
  ($layer_sizes): busybox and a symlink per applet; $DATA_MB MiB of random files; 1000 small text
  files in 100 directories; a layer that deletes two random files and a directory and replaces
  the files of another directory (umoci writes one \`.wh.\` whiteout per deleted path). Before
  timing, the files in forge's container and in umoci's bundle are compared (paths, symlink
  targets, MD5 of every file): they are the same.
- The registry is Debian's \`docker-registry\` (filesystem storage on a tmpfs, plain HTTP on
  127.0.0.1), pushed to with \`skopeo copy oci:LAYOUT:v1 docker://127.0.0.1:$PORT/bench:v1\`.
  It, forge, skopeo and umoci run in a network and mount namespace that the script makes
  (\`unshare --net --mount --fork\`); \`REF\` is \`127.0.0.1:$PORT/bench:v1\`.
- forge: \`--root\` emptied before every run (its run root is \`ROOT/run\`); \`forge pull\`
  downloads the layers concurrently, verifies them while they stream, keeps the compressed blobs
  and unpacks each layer once into the store; \`forge run\` stacks them as overlay lower layers
  (plus a writable layer, cgroups, namespaces; \`--rm\` removes it all again).
- skopeo + umoci: the layout and bundle directories emptied before every run; skopeo
  (\`--src-tls-verify=false\`) copies the blobs as they are; \`umoci unpack\` (as root) extracts the
  layers into one root filesystem, applying the whiteouts, and writes its mtree manifest. It runs
  nothing: forge does more.
- Both read the registry's blobs from the page cache and write their stores to the same file
  system: by default a tmpfs in the script's mount namespace, so the numbers are the tools' own
  work; \`--on-disk\`: a fresh ext4 (\`mkfs.ext4\` defaults, with a journal) on a loop device
  over a sparse file on /tmp's file system. Neither tool syncs, so that is ext4's CPU work and the
  page cache more than the device. Not /tmp's file system itself: on these machines' root (ext4
  without a journal) every new inode costs up to ~1 ms of CPU while many inodes were deleted in
  the last minutes, anywhere on the machine (the kernel's \`recently_deleted\` check in
  \`find_inode_bit\`, seen with \`perf\`), and the results there moved between 0.26 and 0.57
  with what else the machine was doing. hyperfine starts every command through \`sh -c\` and
  subtracts the shell's start-up.
EOF
  replace_doc_section "$doc" "$title" "$section" "$TMP"
  log "wrote $title to $doc"
fi
exit "$leaks"
