#!/bin/bash
# The VM test tier inside the guest (docs/vm-tests.md). scripts/vm-test.sh puts this file on the
# data disk as /vm-data/guest.sh, with vm.env (what to run) and tree/ (the checkout and the
# built binaries at their host paths); the guest's vm-runner.service runs it once the boot has
# finished and powers off when it ends.
#
#   guest.sh              the service's main process: bind-mounts the tree, runs each pass (or
#                         the --exec commands), checks for cgroups left behind
#   guest.sh pass NAME    one pass: every test binary in turn, in the caller's own cgroup
#
# Marked lines (FORGE-VM: ...) go to the serial console, which the host reads; each binary's
# full output goes to results/PASS/NAME.log on the data disk. Nothing here loads a module: the
# kernel loads what Forge uses on first use, as on a freshly booted host.
set -uo pipefail
shopt -s nullglob

DATA=/vm-data
RESULTS=$DATA/results
CG=/sys/fs/cgroup
# shellcheck source=/dev/null
source "$DATA/vm.env"

exec 3>/dev/ttyS0 || exec 3>&1
mark() {
    printf 'FORGE-VM: %s\n' "$*" >&3
    printf '%s\n' "$*" >>"$RESULTS/markers.txt"
}

uptime_s() {
    local up _
    read -r up _ </proc/uptime
    echo "${up%.*}"
}

# SNAP: for each cgroup directory given, its subtree_control, the number of its processes and
# its children, one "DIR FIELD VALUE" line each. Only builtins: a forked helper would show up
# in cgroup.procs.
snapshot() {
    local dir child children lines=()
    SNAP=
    for dir; do
        mapfile -t lines <"$dir/cgroup.subtree_control"
        SNAP+="$dir subtree_control ${lines[*]}"$'\n'
        # The root cgroup's processes include kernel threads, which come and go.
        if [[ $dir != "$CG" ]]; then
            mapfile -t lines <"$dir/cgroup.procs"
            SNAP+="$dir procs ${#lines[@]}"$'\n'
        fi
        children=
        for child in "$dir"/*/; do
            child=${child%/}
            children+="${child##*/} "
        done
        SNAP+="$dir children ${children% }"$'\n'
    done
}

# Marks every line of $SNAP that differs from $1 (an earlier snapshot) as a change made by $2;
# returns 1 when there is one.
compare_snapshot() {
    local before=$1 who=$2 dir field value changed=0
    local -A was=()
    while read -r dir field value; do
        [[ -n $dir ]] && was[$dir $field]=$value
    done <<<"$before"
    while read -r dir field value; do
        [[ -n $dir ]] || continue
        if [[ ${was[$dir $field]-} != "$value" ]]; then
            mark "CGROUP-CHANGED $who: $dir $field: '${was[$dir $field]-}' -> '$value'"
            changed=1
        fi
    done <<<"$SNAP"
    return "$changed"
}

# cgroups named forge* anywhere, but $1 (the pass's own cgroup), that are not yet known.
new_leftovers() {
    local own=$1 path
    find "$CG" -mindepth 1 -type d -name 'forge*' 2>/dev/null | sort | while read -r path; do
        [[ $path == "$own" ]] && continue
        # systemd's slice unit for Forge's scopes stays, as machine.slice does for Podman's; the
        # scopes in it are still reported.
        [[ $path == "$CG/forge.slice" ]] && continue
        grep -qxF "$path" "$RESULTS/leftovers.known" 2>/dev/null && continue
        echo "$path"
    done
}

check_leftovers() {
    local own=$1 who=$2 path
    while read -r path; do
        [[ -n $path ]] || continue
        mark "LEFTOVER $who: $path (procs: $(wc -l <"$path/cgroup.procs"))"
        echo "$path" >>"$RESULTS/leftovers.known"
    done < <(new_leftovers "$own")
}

run_pass() {
    local pass=$1 own line i name path out start rc result before dirs
    if [[ $pass == root ]]; then
        # The diagnostic pass: from the root cgroup (the one place where a v2 host lets a
        # process write any subtree_control). Only builtins until the move is done.
        echo "$BASHPID" >"$CG/cgroup.procs"
    fi
    read -r line </proc/self/cgroup
    own=$CG${line#0::}
    own=${own%/}
    dirs=("$own")
    [[ $own == "$CG" ]] || dirs+=("${own%/*}")
    mark "PASS $pass in cgroup ${own#"$CG"}/, $(uptime_s) s after boot"
    mkdir -p "$RESULTS/$pass"
    snapshot "${dirs[@]}"
    before=$SNAP
    printf '== %s, before\n%s' "$pass" "$SNAP" >>"$RESULTS/cgroups.txt"
    for i in "${!TEST_NAMES[@]}"; do
        name=${TEST_NAMES[$i]} path=${TEST_PATHS[$i]}
        if [[ $pass == scope && " ${SCOPE_SKIP[*]} " == *" $name "* ]]; then
            continue # scripts/vm-test.sh: SERVICE_PASS_ONLY
        fi
        out=$RESULTS/$pass/$name.log
        start=$SECONDS
        (cd "$PROJECT/tests" && exec timeout -k 10 "$BIN_TIMEOUT" "$path" "${TEST_ARGS[@]}") \
            </dev/null >"$out" 2>&1
        rc=$?
        result=$(grep -a '^test result:' "$out" | tail -n 1)
        mark "RESULT $pass $name rc=$rc secs=$((SECONDS - start)) | ${result:-none}"
        snapshot "${dirs[@]}"
        if ! compare_snapshot "$before" "$pass $name"; then
            printf '== %s, after %s\n%s' "$pass" "$name" "$SNAP" >>"$RESULTS/cgroups.txt"
            before=$SNAP
        fi
        check_leftovers "$own" "$pass $name"
    done
}

# Waits until the scope unit $1 is gone (its cgroup removed); marks it left behind if not.
wait_scope_gone() {
    local unit=$1 i
    for ((i = 0; i < 30; i++)); do
        systemctl is-active --quiet "$unit" || return 0
        sleep 0.5
    done
    mark "LEFTOVER scope: $unit still active after its pass: $(systemctl show -p ControlGroup --value "$unit")"
}

run_exec() {
    local pass=${PASSES_WANTED[0]} rc
    export PATH="$BIN_DIR:$PATH"
    cd /root || exit 1
    mark "EXEC as root in the $pass pass, $(uptime_s) s after boot"
    if [[ $pass == scope ]]; then
        systemd-run --quiet --scope --unit=forge-tests-scope-exec --slice=user-0.slice \
            -- /bin/bash "$DATA/exec.sh" </dev/null >"$RESULTS/exec.log" 2>&1
    elif [[ $pass == root ]]; then
        /bin/bash -c 'echo $$ >/sys/fs/cgroup/cgroup.procs && exec /bin/bash "$0"' "$DATA/exec.sh" \
            </dev/null >"$RESULTS/exec.log" 2>&1
    else
        /bin/bash "$DATA/exec.sh" </dev/null >"$RESULTS/exec.log" 2>&1
    fi
    rc=$?
    mark "EXEC-STATUS $rc"
}

main() {
    local state root pass
    state=$(systemctl is-system-running --wait)
    mark "RUNNER up $(uptime_s) s after boot; kernel $(uname -r); /sys/fs/cgroup is $(stat -fc %T "$CG"); systemd: $state"
    for root in "${GUEST_ROOTS[@]}"; do
        if ! mkdir -p "$root" || ! mount --bind "$DATA/tree$root" "$root"; then
            mark "ERROR could not bind-mount $DATA/tree$root at $root"
        fi
    done
    # Software emulation is several times slower than a host: the tests' waits stretch.
    export FORGE_TEST_TIME_SCALE=4
    if [[ -n ${CGROUP_MANAGER+set} ]]; then
        export FORGE_CGROUP_MANAGER=$CGROUP_MANAGER
    fi
    : >>"$RESULTS/leftovers.known"
    if [[ $MODE == exec ]]; then
        run_exec
    else
        check_leftovers "" "boot"
        for pass in "${PASSES_WANTED[@]}"; do
            case $pass in
                service) run_pass service ;;
                root) /bin/bash "$0" pass root ;;
                scope)
                    # A login-like session scope (as pam_systemd makes: user-0.slice, not delegated).
                    systemd-run --quiet --scope --unit=forge-tests-scope-e2e --slice=user-0.slice \
                        -- /bin/bash "$0" pass scope ||
                        mark "ERROR systemd-run --scope exited $?"
                    wait_scope_gone forge-tests-scope-e2e.scope
                    ;;
            esac
            check_leftovers "" "after the $pass pass"
        done
    fi
    journalctl -b --no-pager >"$RESULTS/journal.txt" 2>&1
    sync
    mark "DONE $(uptime_s) s after boot"
}

if [[ ${1:-} == pass ]]; then
    run_pass "$2"
else
    main
fi
