#!/usr/bin/env bash
# forge-supervise benchmark, in one run: bring up N services (each `sleep 1d`) until all run, then
# down, for N = 10 and 50, against `podman-compose up -d` / `down` on the same root filesystem,
# and `forge compose up -d` / a convergence after one service changed / `down`;
# the restart latency of a service that exits at once (restart = "on-failure", first backoff step
# of 100 ms); and the host-side memory of forge-supervise (plus any helper process of its own)
# with 50 services up, against podman's conmon processes. Prints markdown tables; --write-doc
# rewrites the "forge-supervise" section of docs/benchmarks.md.
#
# Usage: sudo bench/compose.sh [--write-doc]
#   --write-doc  rewrite the "forge-supervise" section of docs/benchmarks.md
# Env: FORGE_BIN and SUPERVISE_BIN (skip the cargo build), COUNTS (default "10 50"), REPS (up/down
#      repetitions per tool and N, default 3), RESTARTS (restarts timed in a row, default 20),
#      FIRST_RUNS (fresh supervisors whose first restart is timed, default 5).
#
# Everything runs in a private network namespace and a private mount namespace that this script
# makes (it re-executes itself under `unshare --net --mount --fork`), never in the caller's: the
# project networks' bridges, veths and firewall rules of both tools stay there. No traffic leaves
# them, and podman pulls nothing: its image is `podman import` of a tarball of forge's own `host`
# image, and its storage, run root and network configs live in a temporary directory.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

WRITE_DOC=0 COUNTS=${COUNTS:-10 50} REPS=${REPS:-3} RESTARTS=${RESTARTS:-20} FIRST_RUNS=${FIRST_RUNS:-5}
for arg in "$@"; do common_arg "$arg" 9,13; done
MAX_N=$(printf '%s\n' $COUNTS | sort -n | tail -1) # memory is measured with this many up
IMG=localhost/composebench:latest # podman's image, imported from forge's `host` rootfs

# Microseconds since the epoch, without a fork.
now_us() { local t=$EPOCHREALTIME; REPLY=${t/./}; }

# ==================================================================================================
# Inner part: runs under `unshare --net --mount --fork`, in namespaces of its own.
# ==================================================================================================
inner() {
  check_private_ns
  R=$TMP/results
  mkdir -p "$R"

  # Podman and netavark keep state at fixed places (/run/netns, /run/containers, the image blob
  # cache in /var/lib/containers): empty tmpfs's there, in this mount namespace only. The outer
  # part made any missing mount point.
  local d
  for d in /run/netns /run/containers /var/lib/containers; do mount -t tmpfs -o mode=0755 composebench "$d"; done

  ROOT=$TMP/root
  FORGE=("$FORGE_BIN" --root "$ROOT")
  SUPERVISE=("$SUPERVISE_BIN" --root "$ROOT" --no-color)
  SUP_PID="" STAMP_PID="" PC_PROJECTS=()
  inner_cleanup() {
    [[ -z $SUP_PID ]] || { kill -KILL "$SUP_PID" 2>/dev/null || true; wait "$SUP_PID" 2>/dev/null || true; }
    [[ -z $STAMP_PID ]] || { kill "$STAMP_PID" 2>/dev/null || true; wait "$STAMP_PID" 2>/dev/null || true; }
    local id
    for id in $("${FORGE[@]}" ps -aq 2>/dev/null); do "${FORGE[@]}" rm -f "$id" >/dev/null 2>&1 || true; done
    if ((PODMAN_SAFE)); then
      podman rm -af -t 0 >/dev/null 2>&1 || true
      podman network prune -f >/dev/null 2>&1 || true
    fi
  }
  PODMAN_OK=0 PODMAN_SAFE=0 # PODMAN_SAFE: podman's storage is known to be ours
  trap inner_cleanup EXIT

  # The cgroup directories of every forge container seen running (from their configs): all must be
  # gone at the end. (Our own cgroup may be a hierarchy's root, shared with other work.)
  record_cgroups() {
    cat "$ROOT"/containers/*/config.json 2>/dev/null |
      jq -r '.cgroup | (.dirs[]?[1]), (.unified // empty)' >>"$TMP/forge-cgroups" 2>/dev/null || true
  }

  # --- Images -------------------------------------------------------------------------------------
  "${FORGE[@]}" image build-host host >&2
  # bash for microsecond timestamps inside a container ($EPOCHREALTIME; busybox date has no %N).
  "${FORGE[@]}" image build-host stamp --bin bash >&2

  # --- Podman and podman-compose, configured to keep everything under $TMP ------------------------
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
  cat >"$P/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$P/root"
runroot = "$P/run"
EOF
  # podman-compose runs plain `podman`: these two files point every call of it at $TMP.
  export CONTAINERS_CONF=$P/containers.conf CONTAINERS_STORAGE_CONF=$P/storage.conf
  # Podman's default RLIMIT_NOFILE (1048576) is above the hard limit here, and podman lowers its own
  # RLIMIT_NPROC to 32768: give the containers the limits this script has, capped (as network.sh).
  local nofile_s nofile_h nproc_h
  nofile_s=$(ulimit -Sn) nofile_h=$(ulimit -Hn) nproc_h=$(ulimit -Hu)
  [[ $nproc_h == unlimited || $nproc_h -gt 32768 ]] && nproc_h=32768
  RUN_ARGS="--ulimit nofile=$nofile_s:$nofile_h --ulimit nproc=$nproc_h:$nproc_h --cgroup-parent $PODMAN_CGROUP_PARENT"
  PC=(podman-compose --no-ansi --podman-run-args "$RUN_ARGS")
  local why="" graphroot
  if ! command -v podman >/dev/null; then
    why="podman is not installed"
  elif ! command -v podman-compose >/dev/null; then
    why="podman-compose is not installed (Debian 12: apt-get install podman-compose)"
  elif ! graphroot=$(podman info --format '{{.Store.GraphRoot}}' 2>"$TMP/podman.log"); then
    why="podman info failed: $(tail -1 "$TMP/podman.log")"
  elif [[ $graphroot != "$P/root" ]]; then
    why="podman ignores CONTAINERS_STORAGE_CONF (its graph root is $graphroot): not running it"
  else
    PODMAN_SAFE=1
    tar -C "$ROOT/images/host/rootfs" -cf "$TMP/rootfs.tar" .
    if ! podman import "$TMP/rootfs.tar" "$IMG" >"$TMP/podman.log" 2>&1; then
      why="podman import failed: $(tail -1 "$TMP/podman.log")"
    elif ! podman run --rm --pull never $RUN_ARGS "$IMG" true >"$TMP/podman.log" 2>&1; then
      why="podman run failed: $(tail -1 "$TMP/podman.log")"
    fi
  fi

  # --- Compose files ------------------------------------------------------------------------------
  # Services s01..sNN, each `sleep 1d`, stopped with SIGKILL (a PID 1 without a handler ignores
  # SIGTERM, and the grace period would dominate the down time).
  local n i name
  for n in 2 $COUNTS; do
    mkdir -p "$TMP/forge-$n" "$TMP/pc-$n"
    {
      for ((i = 1; i <= n; i++)); do
        printf '[services.s%02d]\nimage = "host"\ncommand = ["sleep", "1d"]\nstop_signal = "SIGKILL"\n\n' "$i"
      done
    } >"$TMP/forge-$n/compose.toml"
    {
      echo "services:"
      for ((i = 1; i <= n; i++)); do
        printf '  s%02d:\n    image: %s\n    command: ["sleep", "1d"]\n    stop_signal: SIGKILL\n    pull_policy: never\n' "$i" "$IMG"
      done
    } >"$TMP/pc-$n/compose.yaml"
  done
  for n in $COUNTS; do "$SUPERVISE_BIN" --check "$TMP/forge-$n/compose.toml" >&2; done

  # --- Helpers ------------------------------------------------------------------------------------
  # forge-supervise's stderr, each line prefixed with its arrival time (µs), through a FIFO so that
  # the timestamping shell is this script's child and not the supervisor's.
  start_supervisor() { # FILE PROJECT OUT ERR [ARGS...]
    local file=$1 project=$2 out=$3 err=$4
    shift 4
    rm -f "$TMP/fifo"
    mkfifo "$TMP/fifo"
    (
      while IFS= read -r line; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"; done <"$TMP/fifo" >"$err"
    ) &
    STAMP_PID=$!
    "${SUPERVISE[@]}" -p "$project" "$@" "$file" >"$out" 2>"$TMP/fifo" &
    SUP_PID=$!
  }
  stop_supervisor() { # sets DOWN_US and SUP_RC
    local t0 rc=0
    now_us; t0=$REPLY
    kill -TERM "$SUP_PID"
    wait "$SUP_PID" || rc=$?
    now_us; DOWN_US=$((REPLY - t0)) SUP_RC=$rc
    wait "$STAMP_PID" || true
    SUP_PID="" STAMP_PID=""
  }
  supervisor_failed() { # ERRFILE WHAT
    log "forge-supervise $2; its stderr:"
    sed 's/^/  /' "$1" >&2
    exit 1
  }
  running_count() { "${FORGE[@]}" ps -q | wc -l; }
  # Sleeps without a fork: a read that times out on a FIFO nobody writes to.
  mkfifo "$TMP/nap"
  nap() { read -rt "$1" <>"$TMP/nap" || true; }
  # pid → parent pid, for every process.
  ppids() {
    local s line rest
    for s in /proc/[0-9]*/stat; do
      { read -r line <"$s"; } 2>/dev/null || continue
      rest=${line##*) }
      set -- $rest
      echo "${line%% *} $2"
    done
  }
  rss_pss() { awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r + 0, p + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo "0 0"; }

  # forge-supervise and every descendant of it in its own PID namespace (a host-side helper: the
  # containers' processes are in PID namespaces of their own), one line each: pid comm rss pss.
  forge_memory() {
    local sup=$1 pidns pid
    pidns=$(readlink "/proc/$sup/ns/pid")
    for pid in $(ppids | awk -v root="$sup" '
        { kids[$2] = kids[$2] " " $1 }
        END { q[1] = root; n = 1; for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] } }'); do
      if [[ $pid == "$sup" || $(readlink "/proc/$pid/ns/pid" 2>/dev/null) == "$pidns" ]]; then
        echo "$pid $(cat "/proc/$pid/comm") $(rss_pss "$pid")"
      else
        echo "$pid $(cat "/proc/$pid/comm") $(rss_pss "$pid")" >>"$R/forge-container-procs"
      fi
    done
  }
  # Podman's host-side processes in this mount namespace: conmon (one per container) and
  # aardvark-dns (one per host, for networks with DNS).
  podman_memory() {
    local pid comm
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
      [[ $(readlink "/proc/$pid/ns/mnt" 2>/dev/null) == "$SELF_MNTNS" ]] || continue
      comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
      case $comm in conmon | aardvark-dns) echo "$pid $comm $(rss_pss "$pid")" ;; esac
    done
  }

  # --- 1. Up and down -----------------------------------------------------------------------------
  forge_updown() { # N REP [measure memory]
    local n=$1 rep=$2 mem=${3:-0} t0 up_us deadline count=0 polls=0
    local file=$TMP/forge-$n/compose.toml out=$TMP/forge-$n/out-$rep err=$TMP/forge-$n/err-$rep
    now_us; t0=$REPLY
    start_supervisor "$file" "fc$n" "$out" "$err"
    deadline=$((t0 + 120000000))
    local poll_start
    while :; do
      now_us; poll_start=$REPLY
      count=$(running_count) || count=0
      polls=$((polls + 1))
      ((count >= n)) && break
      kill -0 "$SUP_PID" 2>/dev/null || supervisor_failed "$err" "exited before $n containers ran"
      now_us; ((REPLY < deadline)) || supervisor_failed "$err" "did not bring $n containers up within 120 s ($count running)"
      # A poll every 15 ms, or at once when `forge ps` itself took longer.
      local left=$((15000 - (REPLY - poll_start)))
      local frac
      printf -v frac '%06d' "$left"
      ((left < 1000)) || nap "0.$frac"
    done
    now_us; up_us=$((REPLY - t0))
    record_cgroups
    local keep=$R
    ((rep > 0)) || keep=$TMP/warm-up
    mkdir -p "$keep"
    echo "$((up_us / 1000))" >>"$keep/forge-up-$n"
    echo "$((up_us / 1000 / polls))" >>"$keep/forge-poll-ms"
    # When forge-supervise said the last container started, from the same start.
    awk -v t0="$t0" '/: started \(pid/ { last = $1 } END { print int((last - t0) / 1000) }' "$err" >>"$keep/forge-lastlog-$n"
    if ((mem)); then
      sleep 1 # let the supervisor settle (log pumps, first idle)
      forge_memory "$SUP_PID" >"$R/forge-mem"
    fi
    stop_supervisor
    ((SUP_RC == 0)) || log "forge-supervise exited with $SUP_RC after SIGTERM (N=$n, run $rep)"
    echo "$((DOWN_US / 1000))" >>"$keep/forge-down-$n"
    if [[ -n $("${FORGE[@]}" ps -aq) ]]; then
      echo "forge ps -a lists containers after forge-supervise exited (N=$n, run $rep): $("${FORGE[@]}" ps -aq | xargs)" >>"$TMP/leaks"
    fi
    grep -E ' (WARN|ERROR) ' "$err" | sed "s/^[0-9]* /N=$n run $rep: /" >>"$TMP/supervisor-warnings" || true
  }
  pc_updown() { # N REP [measure memory]
    local n=$1 rep=$2 mem=${3:-0} t0 up_us count dir
    dir=$TMP/pc-$n
    now_us; t0=$REPLY
    (cd "$dir" && "${PC[@]}" -p "pc$n" -f compose.yaml up -d) >"$dir/up-$rep.log" 2>&1 ||
      { log "podman-compose up failed (N=$n): $(tail -3 "$dir/up-$rep.log")"; exit 1; }
    now_us; up_us=$((REPLY - t0))
    count=$(podman ps -q --filter "label=io.podman.compose.project=pc$n" | wc -l)
    ((count == n)) || {
      log "podman-compose up -d returned with $count of $n containers running: $(podman ps -a --format '{{.Names}}:{{.Status}}' | xargs)"
      sed 's/^/  /' "$dir/up-$rep.log" >&2
      exit 1
    }
    local keep=$R
    ((rep > 0)) || keep=$TMP/warm-up
    mkdir -p "$keep"
    echo "$((up_us / 1000))" >>"$keep/pc-up-$n"
    if ((mem)); then
      sleep 1
      podman_memory >"$R/podman-mem"
    fi
    now_us; t0=$REPLY
    (cd "$dir" && "${PC[@]}" -p "pc$n" -f compose.yaml down -t 0) >"$dir/down-$rep.log" 2>&1 ||
      { log "podman-compose down failed (N=$n): $(tail -3 "$dir/down-$rep.log")"; exit 1; }
    now_us
    echo "$(((REPLY - t0) / 1000))" >>"$keep/pc-down-$n"
    [[ -z $(podman ps -aq) ]] || { log "podman-compose down left containers: $(podman ps -a --format '{{.Names}}' | xargs)"; exit 1; }
    # podman-compose 1.0.3 leaves the project network; remove it (untimed) so that every up
    # creates its network, as forge-supervise's does.
    podman network rm "pc${n}_default" >/dev/null
  }

  # forge compose up -d (the supervisor in the background, returning once every service has
  # started) and down; in between, one service's command changes and a second up -d converges
  # (only that service is re-created). A lone `forge run -d` joining the project's network,
  # timed in the same run, is what the convergence is compared with.
  export FORGE_SUPERVISE_BIN=$SUPERVISE_BIN
  ms_since() { now_us; awk -v us="$((REPLY - $1))" 'BEGIN { printf "%.1f\n", us / 1000 }'; }
  fc_updown() { # N REP
    local n=$1 rep=$2 t0 dir=$TMP/fc-$n keep=$R
    ((rep > 0)) || keep=$TMP/warm-up
    mkdir -p "$dir" "$keep"
    cp "$TMP/forge-$n/compose.toml" "$dir/compose.toml"
    local fc=("${FORGE[@]}" compose -f "$dir/compose.toml" -p "cc$n")
    now_us; t0=$REPLY
    "${fc[@]}" up -d >"$dir/up-$rep.log" 2>&1 || { log "forge compose up -d failed (N=$n): $(tail -3 "$dir/up-$rep.log")"; exit 1; }
    ms_since "$t0" >>"$keep/fc-up-$n"
    record_cgroups
    sed -i '0,/"sleep", "1d"/s//"sleep", "2d"/' "$dir/compose.toml"
    now_us; t0=$REPLY
    "${fc[@]}" up -d >"$dir/converge-$rep.log" 2>&1 || { log "forge compose up -d (converge) failed (N=$n): $(tail -3 "$dir/converge-$rep.log")"; exit 1; }
    ms_since "$t0" >>"$keep/fc-converge-$n"
    local kept
    kept=$(grep -c '  Running$' "$dir/converge-$rep.log" || true)
    ((kept == n - 1)) && grep -q "cc$n-s01  Recreated" "$dir/converge-$rep.log" ||
      { log "the convergence did not re-create s01 alone (N=$n): $(xargs <"$dir/converge-$rep.log")"; exit 1; }
    record_cgroups
    # A lone container joining the same network, beside the N running ones (a start's cost
    # grows with its network's neighbours: each one's /etc/hosts is rewritten).
    now_us; t0=$REPLY
    "${FORGE[@]}" run -d --net "cc${n}_default" --name lone host sleep 1d >/dev/null
    ms_since "$t0" >>"$keep/lone-run-d-$n"
    record_cgroups
    "${FORGE[@]}" rm -f lone >/dev/null
    now_us; t0=$REPLY
    "${fc[@]}" down >"$dir/down-$rep.log" 2>&1 || { log "forge compose down failed (N=$n): $(tail -3 "$dir/down-$rep.log")"; exit 1; }
    ms_since "$t0" >>"$keep/fc-down-$n"
    [[ -z $("${FORGE[@]}" ps -aq) ]] || echo "forge ps -a lists containers after forge compose down (N=$n, run $rep)" >>"$TMP/leaks"
  }

  # Warm-up, untimed: forge's first network (ip_forward, its nftables table) and podman-compose's
  # first run; podman-compose failing here means it cannot run here at all.
  local warm=${COUNTS%% *}
  forge_updown "$warm" 0
  fc_updown "$warm" 0
  nft list table ip forge >"$TMP/forge-table-before" 2>/dev/null || true
  if [[ -z $why ]]; then
    # In a subshell: pc_updown exits on failure.
    if (pc_updown 2 0) 2>"$TMP/pc-warm.log"; then
      PODMAN_OK=1
    else
      why="podman-compose up/down of 2 services failed: $(tail -1 "$TMP/pc-warm.log")"
    fi
  fi
  if [[ -n $why ]]; then
    log "podman-compose cannot run here, measuring forge alone: $why"
    echo "$why" >"$TMP/podman-missing"
  else
    {
      echo "podman $(podman version --format '{{.Client.Version}}')"
      echo "podman-compose $(dpkg-query -W -f '${Version}' podman-compose 2>/dev/null || podman-compose version 2>/dev/null | head -1)"
      echo "$( (/usr/lib/podman/netavark --version 2>/dev/null || netavark --version) | head -1)"
      podman info --format '{{.Host.OCIRuntime.Version}}' | sed -n 1p
      podman info --format '{{.Host.Conmon.Version}}' | sed -n '1s/,.*//p'
    } >"$TMP/podman-versions"
    # podman-compose up to 1.0.x sleeps 1 s after each `podman run` of `up` (Podman.run's
    # default sleep=1): worth a table without those sleeps.
    local pc_py python
    python=$(sed -n '1s/^#! *//p' "$(command -v podman-compose)") # its own interpreter
    pc_py=$(${python:-python3} -c 'import podman_compose; print(podman_compose.__file__)' 2>/dev/null || true)
    [[ -n $pc_py ]] && grep -q 'wait=True, sleep=1' "$pc_py" && touch "$TMP/pc-sleeps"
  fi

  local rep
  for n in $COUNTS; do
    mkdir -p "$TMP/pc-$n"
    for ((rep = 1; rep <= REPS; rep++)); do
      local mem=0
      ((n == MAX_N && rep == REPS)) && mem=1
      log "N=$n run $rep/$REPS: forge-supervise"
      forge_updown "$n" "$rep" "$mem"
      log "N=$n run $rep/$REPS: forge compose"
      fc_updown "$n" "$rep"
      if ((PODMAN_OK)); then
        log "N=$n run $rep/$REPS: podman-compose"
        pc_updown "$n" "$rep" "$mem"
      fi
    done
  done

  # --- 2. Restart latency -------------------------------------------------------------------------
  # The command prints the time when it starts and again right before it exits 1: a restart's
  # latency is the next run's first time minus this run's last one (the exit, the backoff delay,
  # the new container's start, bash starting). The supervisor's `exited` and `started` lines,
  # timed on arrival, split it.
  local restart_cmd='command = ["bash", "-c", "echo ${EPOCHREALTIME/./}; echo ${EPOCHREALTIME/./}; exit 1"]'
  mkdir -p "$TMP/restart"
  printf '[services.flap]\nimage = "stamp"\n%s\nrestart = "on-failure"\n' "$restart_cmd" >"$TMP/restart/default.toml"
  # The same with the delay held at its first step (max = initial = 100 ms), to time many in a row.
  printf '[services.flap]\nimage = "stamp"\n%s\nrestart = "on-failure"\nx-backoff = { max = "100ms" }\n' \
    "$restart_cmd" >"$TMP/restart/steady.toml"
  restart_samples() { # OUT ERR RESULT: latencies (ms) and their two parts
    awk 'NR % 2 == 1 && NR > 1 { print ($1 - last) / 1000 } NR % 2 == 0 { last = $1 }' "$1" >>"$3"
    # container's last output → `exited` logged; `exited` logged → `started` logged (incl. delay)
    paste <(awk 'NR % 2 == 0 { print $1 }' "$1") <(awk '/flap: exited/ { print $1 }' "$2") |
      awk 'NF == 2 { print ($2 - $1) / 1000 }' >>"$3-exit"
    awk '/flap: exited/ { e = $1 } /flap: started/ && e { print ($1 - e) / 1000; e = 0 }' "$2" >>"$3-start"
  }
  wait_lines() { # FILE LINES ERR
    local deadline
    now_us; deadline=$((REPLY + 60000000))
    while (($(cat "$1" 2>/dev/null | wc -l) < $2)); do
      kill -0 "$SUP_PID" 2>/dev/null || supervisor_failed "$3" "exited while restarting a service"
      now_us; ((REPLY < deadline)) || supervisor_failed "$3" "restarted too slowly"
      sleep 0.02
    done
  }
  log "restart latency: $RESTARTS restarts in a row (delay held at 100 ms)"
  start_supervisor "$TMP/restart/steady.toml" rst "$TMP/restart/steady.out" "$TMP/restart/steady.err" --no-log-prefix
  wait_lines "$TMP/restart/steady.out" $((2 * (RESTARTS + 1))) "$TMP/restart/steady.err"
  record_cgroups
  stop_supervisor
  head -n $((2 * (RESTARTS + 1))) "$TMP/restart/steady.out" >"$TMP/restart/steady.cut"
  restart_samples "$TMP/restart/steady.cut" "$TMP/restart/steady.err" "$R/restart-steady"
  grep -E ' (WARN|ERROR) ' "$TMP/restart/steady.err" | sed 's/^[0-9]* /restart: /' >>"$TMP/supervisor-warnings" || true
  log "restart latency: the first restart of $FIRST_RUNS fresh supervisors (default backoff)"
  for ((rep = 1; rep <= FIRST_RUNS; rep++)); do
    start_supervisor "$TMP/restart/default.toml" rst "$TMP/restart/first-$rep.out" "$TMP/restart/first-$rep.err" --no-log-prefix
    wait_lines "$TMP/restart/first-$rep.out" 4 "$TMP/restart/first-$rep.err"
    record_cgroups
    stop_supervisor
    head -n 4 "$TMP/restart/first-$rep.out" >"$TMP/restart/first-$rep.cut"
    restart_samples "$TMP/restart/first-$rep.cut" "$TMP/restart/first-$rep.err" "$R/restart-first"
    grep -m1 -o 'restarting in [^ ]*' "$TMP/restart/first-$rep.err" >>"$R/restart-first-delay" || true
  done
  [[ -z $("${FORGE[@]}" ps -aq) ]] || echo "forge ps -a lists containers after the restart runs" >>"$TMP/leaks"

  # --- Leaks, before this namespace goes away -----------------------------------------------------
  # The kernel deletes a container's veth pair when its namespace goes, asynchronously: give it 2 s.
  local links
  for ((i = 0; i < 40; i++)); do
    links=$(ip -o link show | awk -F': ' '$2 != "lo" { print $2 }' | xargs)
    [[ -n $links ]] || break
    sleep 0.05
  done
  [[ -z $links ]] || echo "links left in the benchmark's namespace: $links" >>"$TMP/leaks"
  [[ -z $("${FORGE[@]}" ps -aq 2>/dev/null) ]] || echo "forge ps -a lists containers: $("${FORGE[@]}" ps -aq | xargs)" >>"$TMP/leaks"
  [[ -z $(ls -A "$ROOT/containers" 2>/dev/null) ]] || echo "forge left container directories: $(ls "$ROOT/containers" | xargs)" >>"$TMP/leaks"
  local nets
  nets=$("${FORGE[@]}" network ls 2>/dev/null | awk 'NR > 1 { print $1, $2 }' | grep -E '(^| )(fc[0-9]+|rst)_' | xargs || true)
  [[ -z $nets ]] || echo "forge networks left: $nets" >>"$TMP/leaks"
  nft list table ip forge >"$TMP/forge-table-after" 2>/dev/null || true
  echo "forge's nftables table after the first down: $(wc -l <"$TMP/forge-table-before") lines; at the end: $(wc -l <"$TMP/forge-table-after") lines" >>"$TMP/notes"
  diff "$TMP/forge-table-before" "$TMP/forge-table-after" >"$TMP/forge-table.diff" ||
    echo "forge's nftables table changed between the first and the last down: $(grep -c '^[<>]' "$TMP/forge-table.diff") lines" >>"$TMP/leaks"
  if ((PODMAN_OK)); then
    [[ -z $(podman ps -aq) ]] || echo "podman left containers" >>"$TMP/leaks"
  fi
  [[ -z $(findmnt -rn -o TARGET | grep "^$ROOT/") ]] || echo "mounts left under forge's root: $(findmnt -rn -o TARGET | grep "^$ROOT/" | xargs)" >>"$TMP/leaks"
  local cg="" c
  for c in $(sort -u "$TMP/forge-cgroups" 2>/dev/null); do [[ ! -d $c ]] || cg+=" $c"; done
  [[ -z $cg ]] || echo "cgroups left:$cg" >>"$TMP/leaks"
  echo "forge container cgroup directories checked: $(sort -u "$TMP/forge-cgroups" 2>/dev/null | wc -l)" >>"$TMP/notes"
  local pid procs=""
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $pid == "$$" || $pid == "$PPID" || $pid == "$BASHPID" ]] && continue
    [[ $(readlink "/proc/$pid/ns/mnt" 2>/dev/null) == "$SELF_MNTNS" ]] || continue
    case $(cat "/proc/$pid/comm" 2>/dev/null) in ls | grep | readlink | cat | "") continue ;; esac
    procs+=" $pid($(cat "/proc/$pid/comm" 2>/dev/null))"
  done
  [[ -z $procs ]] || echo "processes left:$procs" >>"$TMP/leaks"
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
for cmd in podman podman-compose iptables nft ip jq busybox nsenter; do
  if ! command -v "$cmd" >/dev/null || [[ ! -x /usr/lib/podman/netavark ]]; then
    log "installing podman podman-compose netavark iptables nftables iproute2 jq busybox-static"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman podman-compose netavark iptables \
      nftables iproute2 jq busybox-static >&2 || log "apt-get install failed; going on with what is there"
    break
  fi
done
for cmd in nft ip jq unshare findmnt bash; do
  command -v "$cmd" >/dev/null || { log "$cmd is missing"; exit 1; }
done

need_forge supervise

# --- Podman's cgroup parent, below this script's own cgroup in every hierarchy -------------------
podman_cgroup_parent forge-composebench

# --- Private data root, mount points, the run itself ----------------------------------------------
TMP=$(mktemp -d /tmp/forge-composebench.XXXXXX)
make_mount_points /run/netns /run/containers /var/lib/containers
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  # Processes that outlived the benchmark (if it was killed: forge-supervise, containers, conmon),
  # forge's and podman's cgroups (podman-compose may have failed half-way), then what the script
  # made.
  kill_leftovers "$TMP/root"
  remove_podman_cgroups
  remove_made_dirs
  remove_tmp
}
trap cleanup EXIT

run_private_ns FORGE_BIN="$FORGE_BIN" SUPERVISE_BIN="$SUPERVISE_BIN" \
  PODMAN_CGROUP_PARENT="$PODMAN_CGROUP_PARENT" COUNTS="$COUNTS" REPS="$REPS" RESTARTS="$RESTARTS" \
  FIRST_RUNS="$FIRST_RUNS"

# --- Report ---------------------------------------------------------------------------------------
R=$TMP/results
podman_ok=1
[[ -f $TMP/podman-missing ]] && podman_ok=0
list() { paste -sd, "$1" | sed 's/,/, /g'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }

if ((podman_ok)); then
  updown_table=$(
    echo "| N | forge-supervise up (ms) | podman-compose up -d (ms) | up ratio | forge-supervise down (ms) | podman-compose down (ms) | down ratio |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for n in $COUNTS; do
      fu=$(median <"$R/forge-up-$n") pu=$(median <"$R/pc-up-$n") fd=$(median <"$R/forge-down-$n") pd=$(median <"$R/pc-down-$n")
      echo "| $n | $fu | $pu | **$(ratio "$fu" "$pu")** | $fd | $pd | $(ratio "$fd" "$pd") |"
    done
  )
  sleeps_table=""
  [[ -f $TMP/pc-sleeps ]] && sleeps_table=$(
    echo "| N | podman-compose up -d less its N × 1 s sleeps (ms) | forge-supervise up / that |"
    echo "|---:|---:|---:|"
    for n in $COUNTS; do
      fu=$(median <"$R/forge-up-$n") pu=$(median <"$R/pc-up-$n")
      echo "| $n | $((${pu%.*} - 1000 * n)) | $(ratio "$fu" $((${pu%.*} - 1000 * n))) |"
    done
  )
else
  updown_table=$(
    echo "| N | forge-supervise up (ms) | forge-supervise down (ms) |"
    echo "|---:|---:|---:|"
    for n in $COUNTS; do echo "| $n | $(median <"$R/forge-up-$n") | $(median <"$R/forge-down-$n") |"; done
  )
  sleeps_table=""
fi
fc_table=$(
  echo "| N | forge compose up -d (ms) | forge-supervise up (ms) | compose/supervise | forge compose down (ms) | converge after one service changed (ms) | lone \`forge run -d\` (ms) | converge / lone |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in $COUNTS; do
    cu=$(median <"$R/fc-up-$n") fu=$(median <"$R/forge-up-$n") cd=$(median <"$R/fc-down-$n") cv=$(median <"$R/fc-converge-$n") lone=$(median <"$R/lone-run-d-$n")
    echo "| $n | $cu | $fu | $(ratio "$cu" "$fu") | $cd | $cv | $lone | **$(ratio "$cv" "$lone")** |"
  done
)
per_container=$(for n in $COUNTS; do
  awk -v n="$n" -v u="$(median <"$R/forge-up-$n")" 'BEGIN { printf "%.1f ms at N = %d\n", u / n, n }'
done | paste -sd, | sed 's/,/, /g')
runs_table=$(
  echo "| N | tool | up, each run (ms) | down, each run (ms) |"
  echo "|---:|---|---|---|"
  for n in $COUNTS; do
    echo "| $n | forge-supervise | $(list "$R/forge-up-$n") | $(list "$R/forge-down-$n") |"
    echo "| $n | forge compose | $(list "$R/fc-up-$n") | $(list "$R/fc-down-$n") |"
    echo "| $n | forge compose converge | $(list "$R/fc-converge-$n") | |"
    ((podman_ok)) && echo "| $n | podman-compose | $(list "$R/pc-up-$n") | $(list "$R/pc-down-$n") |"
  done
  for n in $COUNTS; do
    echo "| $n | forge-supervise's last \`started\` line | $(list "$R/forge-lastlog-$n") | |"
  done
)

r_steady=$(median <"$R/restart-steady") r_first=$(median <"$R/restart-first")
restart_table=$(
  echo "| restarts timed | latency median (ms) | min – max (ms) | exit → \`exited\` logged, median (ms) | \`exited\` → \`started\` logged, median (ms) |"
  echo "|---|---:|---:|---:|---:|"
  for k in first steady; do
    f=$R/restart-$k
    label="first restart of $FIRST_RUNS fresh supervisors (default backoff)"
    [[ $k == steady ]] && label="$RESTARTS in a row, x-backoff max = 100ms"
    echo "| $label | **$(f1 "$(median <"$f")")** | $(f1 "$(sort -g "$f" | head -1)") – $(f1 "$(sort -g "$f" | tail -1)") | $(f1 "$(median <"$f-exit")") | $(f1 "$(median <"$f-start")") |"
  done
)
first_delays=$(sort -u "$R/restart-first-delay" | sed 's/restarting in //' | xargs)

mem_sum() { awk -v c="$2" '$2 ~ c { r += $3; p += $4; k++ } END { printf "%d %d %d\n", k, r, p }' "$1"; }
read -r f_procs f_rss f_pss < <(mem_sum "$R/forge-mem" .)
c_k=0 c_r=0 c_p=0 a_k=0 a_r=0 a_p=0
if ((podman_ok)); then
  read -r c_k c_r c_p < <(mem_sum "$R/podman-mem" '^conmon$')
  read -r a_k a_r a_p < <(mem_sum "$R/podman-mem" '^aardvark-dns$')
fi
mem_table=$(
  echo "| host-side processes with $MAX_N services up | processes | RSS total (MiB) | PSS total (MiB) | RSS per container (MiB) | PSS per container (MiB) |"
  echo "|---|---:|---:|---:|---:|---:|"
  awk -v n="$MAX_N" -v k="$f_procs" -v r="$f_rss" -v p="$f_pss" -v what="forge-supervise (+ helpers: $(awk '{ print $2 }' "$R/forge-mem" | sort | uniq -c | awk '{ printf "%s%s × %s", (NR > 1 ? ", " : ""), $1, $2 }'))" \
    'BEGIN { printf "| %s | %d | %.1f | %.1f | **%.3f** | **%.3f** |\n", what, k, r / 1024, p / 1024, r / 1024 / n, p / 1024 / n }'
  if ((podman_ok)); then
    awk -v n="$MAX_N" -v k="$c_k" -v r="$c_r" -v p="$c_p" \
      'BEGIN { printf "| podman: conmon | %d | %.1f | %.1f | %.3f | %.3f |\n", k, r / 1024, p / 1024, r / 1024 / n, p / 1024 / n }'
    awk -v n="$MAX_N" -v k="$((c_k + a_k))" -v r="$((c_r + a_r))" -v p="$((c_p + a_p))" \
      'BEGIN { printf "| podman: conmon + aardvark-dns | %d | %.1f | %.1f | %.3f | %.3f |\n", k, r / 1024, p / 1024, r / 1024 / n, p / 1024 / n }'
  fi
)
mem_ratio=n/a
((podman_ok)) && mem_ratio=$(ratio "$f_pss" "$c_p")
container_procs=$(wc -l <"$R/forge-container-procs" 2>/dev/null || echo 0)

echo "$updown_table"
echo
[[ -z $sleeps_table ]] || { echo "$sleeps_table"; echo; }
echo "$fc_table"
echo
echo "$runs_table"
echo
echo "forge-supervise up per container: $per_container; forge ps polled every $(median <"$R/forge-poll-ms") ms on average (median of the runs)"
echo
echo "$restart_table"
echo
echo "first delays logged: $first_delays"
echo
echo "$mem_table"
echo
echo "forge/conmon PSS ratio: $mem_ratio; container processes outside the count (own PID namespaces): $container_procs"
((podman_ok)) || echo "podman-compose could not run: $(cat "$TMP/podman-missing")"
echo
if [[ -s $TMP/supervisor-warnings ]]; then
  echo "forge-supervise warnings and errors:"
  sed 's/^/  /' "$TMP/supervisor-warnings"
fi
[[ ! -s $TMP/notes ]] || cat "$TMP/notes"
echo "left in the benchmark's namespace at its end:"
sed 's/^/  /' "$TMP/left"

leaks=0
if [[ -s $TMP/leaks ]]; then
  leaks=1
  while read -r line; do log "LEAK: $line"; done <"$TMP/leaks"
  [[ -s $TMP/forge-table.diff ]] && cat "$TMP/forge-table.diff" >&2
fi

if ((WRITE_DOC)) && ((leaks == 0)); then
  doc=$REPO/docs/benchmarks.md
  title="## forge-supervise"
  if ((podman_ok)); then
    versions="$(paste -sd, "$TMP/podman-versions" | sed 's/,/, /g')"
  else
    versions="podman-compose could not run: $(cat "$TMP/podman-missing")"
  fi
  env_note=""
  [[ "$COUNTS|$REPS|$RESTARTS|$FIRST_RUNS" == "10 50|3|20|5" ]] ||
    env_note="COUNTS=\"$COUNTS\" REPS=$REPS RESTARTS=$RESTARTS FIRST_RUNS=$FIRST_RUNS "
  section=$TMP/section.md
  cat >"$section" <<EOF
$title

Reproduce: \`sudo ${env_note}bench/compose.sh --write-doc\` — $REPS runs of each up/down per tool and N,
alternating; $RESTARTS restarts in a row plus the first restart of $FIRST_RUNS fresh supervisors.
$(machine_line)
$(cgroup_line hybrid); $(date -u +%Y-%m-%d); forge $(forge_rev),
$versions.

### Up and down of N services (medians)

$updown_table

forge-supervise up: from starting \`forge-supervise -p PROJECT FILE\` until \`forge ps -q\` lists N
running containers, polled every 15 ms or as soon as the last \`forge ps\` returned (on average
every $(median <"$R/forge-poll-ms") ms, median of the runs); down: from SIGTERM until forge-supervise has exited
(every container, its network and its bridge removed). podman-compose: \`up -d\` and \`down -t 0\`
as whole commands. Target: up at most 0.1x podman-compose. forge-supervise's up per container:
$per_container.
EOF
  if [[ -n $sleeps_table ]]; then
    cat >>"$section" <<EOF

This podman-compose starts the containers one after another and sleeps 1 s after each
\`podman run -d\` (its \`Podman.run(..., sleep=1)\` default), so most of its up time is that
sleep. Without it:

$sleeps_table
EOF
  fi
  cat >>"$section" <<EOF

### forge compose up -d, a convergence, down (medians)

$fc_table

\`forge compose -f FILE -p PROJECT up -d\` returns once the background supervisor has started every
service (it reads the supervisor's log every 10 ms); then the first service's command changes and a
second \`up -d\` converges (the supervisor stops, removes and re-creates that service alone, the
other N - 1 keep running, checked from its \`Running\` lines); \`down\` until the supervisor has
exited and removed everything. The lone \`forge run -d --net PROJECT_default --name lone host sleep
1d\`, joining the project's network beside its N running containers as the re-created service
does, is timed once per run (before the down), from the command's start to its return. Targets: compose up
no slower than forge-supervise; the convergence at most 1.5x the lone start.

Each run:

$runs_table

### Restart latency

$restart_table

A service on the \`stamp\` image (\`forge image build-host stamp --bin bash\`) runs
\`bash -c 'echo \${EPOCHREALTIME/./}; echo \${EPOCHREALTIME/./}; exit 1'\` with \`restart =
"on-failure"\`: the latency is from the second time printed (right before the exit) to the first
time printed by the replacement; the two right-hand columns split it at forge-supervise's \`exited\`
and \`started\` log lines (timed as they arrive on its stderr). First delays logged: $first_delays.
Target: under 150 ms including the 100 ms delay.

### Host-side memory with $MAX_N services up

$mem_table

From \`/proc/PID/smaps_rollup\` one second after the last container started. Forge: forge-supervise
and its descendants in its own PID namespace (helpers; the containers' processes, $container_procs
\`sleep\`s in PID namespaces of their own, are not counted). Podman: its per-container \`conmon\` and
the \`aardvark-dns\` that serves the project network's names. forge-supervise/conmon PSS ratio:
**$mem_ratio**. Target: under 1 MB per container.

- Everything runs in a network and a mount namespace that the script makes (\`unshare --net
  --mount --fork\`): the project networks' bridges, veths and firewall rules never touch the host's.
- Same root filesystem: podman's image is \`podman import\` of a tarball of forge's \`host\` image
  (busybox applets), \`pull_policy: never\`. Podman runs with overlay storage, its run root and
  network configs in a temporary directory (\`CONTAINERS_CONF\`, \`CONTAINERS_STORAGE_CONF\`),
  cgroupfs, the file events backend, netavark, and (\`--podman-run-args\`) \`--cgroup-parent\` below
  the script's cgroup and the ulimits of bench/network.sh.
- Both tools make the project's bridge network and one veth pair per container. Services stop
  with SIGKILL (\`stop_signal\`), so no grace period counts in the down times. podman-compose
  1.0.3 leaves the project network after \`down\`; the script removes it, untimed, so that each
  \`up\` creates it as forge-supervise's does.
- The machine is small and noisy: compare the ratios of one run, not medians across runs.
EOF
  replace_doc_section "$doc" "$title" "$section" "$TMP"
  log "wrote $title to $doc"
fi
exit "$leaks"
