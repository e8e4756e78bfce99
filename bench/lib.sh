# shellcheck shell=bash
# Shared by the bench/*.sh scripts (sourced right after REPO is set): what their docs/benchmarks.md
# sections have in common, the writer of one section, and the set-up every script repeated.

# machine_line
# The doc's "Machine: N CPUs (MODEL), kernel K," line, the same in every section.
machine_line() {
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || echo unknown)), kernel $(uname -r),"
}

# replace_doc_section DOC TITLE SECTION_FILE TMPDIR
# Replaces the section that starts with the line TITLE (up to the next "## " heading) with the
# contents of SECTION_FILE, or appends it if absent; creates DOC with its header if missing.
replace_doc_section() {
  local doc=$1 title=$2 section=$3 tmp=$4
  [[ -f $doc ]] || printf '%s\n' "# Benchmarks" "" \
    "Forge measured side by side with the tools a user would pick instead. Each section is written" \
    "by a script in \`bench/\` and starts with the command that reproduces it (run as root)." >"$doc"
  awk -v title="$title" -v section="$section" '
    function emit(  line) { while ((getline line < section) > 0) print line; done = 1 }
    $0 == title { emit(); skip = 1; next }
    skip && /^## / { skip = 0; print "" }
    !skip { print }
    END { if (!done) { print ""; emit() } }
  ' "$doc" >"$tmp/doc.md"
  cat "$tmp/doc.md" >"$doc" # keep the file's owner and mode
}

# --- Set-up shared by every script ----------------------------------------------------------------
# The calling script's name, for its messages ($0 is the script also when it re-executes itself).
BENCH_NAME=${0##*/}

# log MESSAGE...
# Progress and errors go to stderr, prefixed with the script's name: stdout carries the tables.
log() { echo "$BENCH_NAME: $*" >&2; }

# common_arg ARG HELP_LINES
# The arguments every script takes, for the `*)` branch of its own `case`: --write-doc sets
# WRITE_DOC=1, -h/--help prints lines HELP_LINES (sed range) of its header comment, and anything
# else is an error, so that a typo never starts a long run.
# shellcheck disable=SC2034 # WRITE_DOC is read by the caller
common_arg() {
  case $1 in
    --write-doc) WRITE_DOC=1 ;;
    -h | --help) sed -n "$2s/^# \{0,1\}//p" "$0"; exit 0 ;;
    *) echo "$BENCH_NAME: unknown argument: $1" >&2; exit 2 ;;
  esac
}

# require_root
# Every script makes namespaces, mounts and cgroups: say so at once instead of failing half-way.
require_root() {
  [[ $EUID -eq 0 ]] || { echo "$BENCH_NAME: must run as root (sudo bench/$BENCH_NAME)" >&2; exit 1; }
}

# need_forge [supervise]
# Sets FORGE_BIN (with "supervise" also SUPERVISE_BIN) to an absolute path: the binaries given in
# the environment, else a release build of this checkout. Absolute, because the scripts cd and
# re-execute themselves.
# shellcheck disable=SC2120 # most callers pass nothing
need_forge() {
  local sup=0 what=forge vars=FORGE_BIN pkgs=(-p forge-cli)
  if [[ ${1:-} == supervise ]]; then
    sup=1 what="forge and forge-supervise" vars="FORGE_BIN and SUPERVISE_BIN"
    pkgs=(-p forge-supervisor -p forge-cli)
  fi
  if [[ -z ${FORGE_BIN:-} ]] || { ((sup)) && [[ -z ${SUPERVISE_BIN:-} ]]; }; then
    # sudo's secure_path usually hides rustup's cargo; look where rustup puts it.
    local sudo_home
    sudo_home=$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)
    PATH=$PATH:$HOME/.cargo/bin:$sudo_home/.cargo/bin
    command -v cargo >/dev/null || { log "cargo not found; install Rust or set $vars"; exit 1; }
    log "building $what (release)"
    (cd "$REPO" && cargo build --release "${pkgs[@]}") >&2
    FORGE_BIN=$REPO/target/release/forge
    ((sup == 0)) || SUPERVISE_BIN=$REPO/target/release/forge-supervise
  fi
  FORGE_BIN=$(realpath "$FORGE_BIN")
  ((sup == 0)) || SUPERVISE_BIN=$(realpath "$SUPERVISE_BIN")
}

# forge_rev
# What the doc calls the checkout measured: `git describe`, marked -dirty with local changes.
forge_rev() { git -C "$REPO" describe --always --dirty 2>/dev/null || echo "?"; }

# cgroup_line [hybrid]
# The doc's "cgroup v1" or "cgroup v2"; with "hybrid", a v1 machine whose v2 hierarchy is mounted
# at /sys/fs/cgroup/unified says so (forge-supervise's section; the others keep plain "cgroup v1").
# shellcheck disable=SC2120 # most callers pass nothing
cgroup_line() {
  if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    echo "cgroup v2"
  elif [[ ${1:-} == hybrid && $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
    echo "cgroup v1 (hybrid: v2 at /sys/fs/cgroup/unified)"
  else
    echo "cgroup v1"
  fi
}

# median < NUMBERS
# The median of one number a line ("nan" for none): the scripts report medians, noisy runs aside.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# remove_tmp
# The end of every script's cleanup: unmount whatever a failed run left under $TMP (deepest first),
# then delete it without crossing into a file system still mounted there.
remove_tmp() {
  findmnt -rn -o TARGET | grep "^$TMP/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$TMP"
}

# --- Scripts that run in a private network and mount namespace (network, pull, compose) ------------

# make_mount_points DIR...
# Creates the fixed paths the inner part mounts tmpfs's on, where missing; remove_made_dirs takes
# back exactly those, so the host is left as it was.
made_dirs=()
make_mount_points() {
  local d
  for d in "$@"; do [[ -d $d ]] || { mkdir -p "$d"; made_dirs+=("$d"); }; done
}
remove_made_dirs() {
  local d
  for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null || log "could not remove $d"; done
}

# run_private_ns VAR=VALUE...
# Re-executes the script under `unshare --net --mount --fork`, with the variables given and
# BENCH_INNER=1, BENCH_TMP and the caller's namespaces (for check_private_ns) in its environment,
# so that no link, firewall rule or mount it makes touches the host's. Exits if the inner run fails.
run_private_ns() {
  log "entering a private network and mount namespace"
  local rc=0
  env BENCH_INNER=1 BENCH_TMP="$TMP" BENCH_HOST_NS="$(readlink /proc/self/ns/net)" \
    BENCH_HOST_MNTNS="$(readlink /proc/self/ns/mnt)" "$@" \
    unshare --net --mount --propagation private --fork -- bash "$0" || rc=$?
  ((rc == 0)) || { log "the benchmark failed (exit $rc)"; exit "$rc"; }
}

# check_private_ns
# First thing in the inner part: sets TMP, SELF_NS and SELF_MNTNS, refuses to go on in the
# caller's namespaces, leaves the mount namespace's id for kill_leftovers and brings lo up.
check_private_ns() {
  TMP=$BENCH_TMP
  SELF_NS=$(readlink /proc/self/ns/net)
  [[ $SELF_NS != "$BENCH_HOST_NS" ]] || { log "refusing to run in the caller's network namespace"; exit 1; }
  SELF_MNTNS=$(readlink /proc/self/ns/mnt)
  [[ $SELF_MNTNS != "$BENCH_HOST_MNTNS" ]] || { log "refusing to run in the caller's mount namespace"; exit 1; }
  echo "$SELF_MNTNS" >"$TMP/mntns" # for the outer part's last-resort cleanup
  ip link set lo up
}

# kill_leftovers FORGE_ROOT
# The outer part's cleanup, for when the benchmark was killed: kills by pid the processes still in
# the private mount namespace, then those of any forge container still recorded under FORGE_ROOT
# (by the pids in its cgroups), and removes those cgroups (and their parent, if empty).
kill_leftovers() {
  local root=$1 pid c i mntns dirs
  mntns=$(cat "$TMP/mntns" 2>/dev/null || true)
  if [[ -n $mntns && $mntns != $(readlink /proc/self/ns/mnt) ]]; then
    for pid in /proc/[0-9]*; do
      pid=${pid#/proc/}
      [[ $(readlink "/proc/$pid/ns/mnt" 2>/dev/null) == "$mntns" ]] || continue
      log "killing leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
      kill -9 "$pid" 2>/dev/null || true
    done
  fi
  dirs=$(cat "$root"/containers/*/config.json 2>/dev/null |
    jq -r '.cgroup | (.dirs[]?[1]), (.unified // empty)' 2>/dev/null || true)
  for c in $dirs; do
    while read -r pid; do
      log "killing leftover container process $pid"
      kill -9 "$pid" 2>/dev/null || true
    done < <(cat "$c/cgroup.procs" 2>/dev/null)
  done
  for c in $dirs; do # once the killed processes are reaped; the parent goes if it is empty
    for ((i = 0; i < 40; i++)); do [[ ! -d $c ]] || rmdir "$c" 2>/dev/null && break; sleep 0.05; done
    [[ ! -d $c ]] || log "could not remove cgroup $c"
    rmdir "${c%/*}" 2>/dev/null || true
  done
}

# --- Podman next to forge (network, compose) ------------------------------------------------------

# podman_cgroup_parent NAME
# Podman (cgroupfs) takes one cgroup parent for all hierarchies; forge picks one per hierarchy
# itself. Sets PODMAN_CGROUP_PARENT to a directory NAME-PID below the deepest of our own cgroups,
# provided the others are its ancestors, and, as runc creates the missing directories on the way
# in each hierarchy, remembers in made_cgroup_dirs those that did not exist (for
# remove_podman_cgroups). Also sets cgroup_mounts.
podman_cgroup_parent() {
  local own deepest p m a ancestors=()
  own=$(cut -d: -f3 /proc/self/cgroup | sort -u)
  deepest=$(echo "$own" | awk '{ print length, $0 }' | sort -n | tail -1 | cut -d' ' -f2-)
  for p in $own; do
    [[ $p == / || $deepest == "$p" || $deepest == "$p"/* ]] ||
      { log "own cgroups $own are not nested: cannot give podman one cgroup parent below them"; exit 1; }
  done
  PODMAN_CGROUP_PARENT=${deepest%/}/$1-$$
  mapfile -t cgroup_mounts < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)
  p=$deepest # $deepest and its parents, deepest first
  while [[ $p != / && -n $p ]]; do ancestors+=("$p"); p=${p%/*}; done
  made_cgroup_dirs=()
  for m in "${cgroup_mounts[@]}"; do
    for a in "${ancestors[@]}"; do [[ -d $m$a ]] || made_cgroup_dirs+=("$m$a"); done
  done
}

# remove_podman_cgroups
# Cleanup: kills the processes of podman's containers still in cgroups below PODMAN_CGROUP_PARENT
# (if the script was killed, or a podman command failed half-way; they are in namespaces of their
# own), removes those cgroups, then the directories runc made on the way.
remove_podman_cgroups() {
  local m c pid i
  for m in "${cgroup_mounts[@]}"; do
    c=$m$PODMAN_CGROUP_PARENT
    [[ -d $c ]] || continue
    for pid in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
      log "killing leftover podman container process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  for m in "${cgroup_mounts[@]}"; do
    c=$m$PODMAN_CGROUP_PARENT
    for ((i = 0; i < 40; i++)); do
      [[ -d $c ]] || break
      find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || sleep 0.05
    done
    [[ ! -d $c ]] || log "could not remove $c"
  done
  for c in "${made_cgroup_dirs[@]}"; do rmdir "$c" 2>/dev/null || true; done # listed deepest first
}
