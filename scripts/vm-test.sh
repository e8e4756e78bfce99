#!/usr/bin/env bash
# The VM test tier: boots a Debian 12 guest with pure cgroup v2 and systemd as PID 1 under qemu
# (TCG) and runs Forge's end-to-end test binaries inside it, as a systemd service and from a
# login-like session scope (docs/vm-tests.md).
#
#   scripts/vm-test.sh [--pass service|scope|all] [TEST_BINARY...]   e.g. run limits
#   scripts/vm-test.sh --pass root [TEST_BINARY...]   diagnostic: from the root cgroup (not in all)
#   scripts/vm-test.sh [--pass service|scope] --exec 'SHELL COMMANDS'
#   scripts/vm-test.sh --report      the last run's report again (from FORGE_VM_OUT)
#
# Environment: FORGE_VM_CACHE (guest image cache, default /var/cache/forge-vm), FORGE_VM_OUT
# (serial log, data disk and results, default target/vm), FORGE_VM_TIMEOUT (seconds for the
# whole guest run, default 4200), FORGE_VM_BIN_TIMEOUT (seconds per test binary, default 900),
# FORGE_VM_ARGS (extra arguments for every test binary, e.g. a test-name filter),
# FORGE_VM_CGROUP_MANAGER (passed to the tests as FORGE_CGROUP_MANAGER), FORGE_VM_MIRROR (the
# Debian mirror, instead of the one in the host's apt sources), FORGE_VM_MEMORY (MiB, 4096),
# FORGE_VM_SMP (2), FORGE_VM_APPEND (extra kernel command line).
#
# The guest has no network device; the tests use loopback and namespaces only. The cached image
# is booted through a throwaway overlay (snapshot=on) and never modified.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE=${FORGE_VM_CACHE:-/var/cache/forge-vm}
OUT=${FORGE_VM_OUT:-$ROOT/target/vm}
TIMEOUT=${FORGE_VM_TIMEOUT:-4200}
BIN_TIMEOUT=${FORGE_VM_BIN_TIMEOUT:-900}
SUITE=bookworm
# Test binaries the scope pass leaves out unless named on the command line: their containers'
# cgroups are made as every other binary's, and what they test (addresses, rules, registries,
# the image store, escapes, the sealed binary, mounts and copies) does not depend on the cgroup
# Forge is started from. Leaving them out keeps both passes inside CI's time under emulation.
SERVICE_PASS_ONLY=(images network pull escape self_exe volumes cp)

# What the guest has: systemd as PID 1 with the system bus, the kernel with its modules and
# initramfs (udev names /dev/vd* and makes the device units that the data disk's mount waits
# for), and everything the end-to-end tests run (scripts/install-deps.sh's runtime tools).
# The packages of the libraries that the built binaries link are added at run time
# (library_packages). debootstrap resolves no virtual package: skopeo's containers-common needs a
# container-network-stack, named here (netavark, as apt would pick).
GUEST_PACKAGES=(systemd systemd-sysv dbus udev kmod linux-image-amd64 initramfs-tools
    procps iproute2 util-linux mount e2fsprogs ca-certificates
    busybox-static runc jq tmux strace nftables skopeo netavark umoci docker-registry apache2-utils
    openssl libnftnl11 libmnl0 libseccomp2)
# Host tools: the guest build and boot, and Forge's build (scripts/install-deps.sh's build deps).
HOST_PACKAGES=(debootstrap debian-archive-keyring qemu-system-x86 e2fsprogs jq
    pkg-config libnftnl-dev libmnl-dev libseccomp-dev)

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
}
say() { printf 'vm: %s\n' "$*"; }
die() {
    printf 'vm-test: %s\n' "$*" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Host

install_host_tools() {
    local pkg need=()
    for pkg in "${HOST_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    ((${#need[@]})) || return 0
    say "installing on the host: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# The URI of the host's apt source for Debian $SUITE (main), from /etc/apt/sources.list (one-line
# format) or /etc/apt/sources.list.d/*.sources (deb822). Prints nothing when there is none.
host_mirror() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $file ]] || continue
        awk -v suite="$SUITE" '
            $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                          if ($(i + 1) == suite) { print $i; exit } }' "$file"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -r $file ]] || continue
        # deb822: paragraphs separated by blank lines; fields Types, URIs, Suites, Enabled.
        awk -v suite="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uri != "")
                    { print uri; found = 1; exit }
                types = suites = uri = ""; enabled = "yes"
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:" { $1 = ""; types = substr($0, 2) }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = substr($0, 2) }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { if (!found) flush() }' "$file"
    done | awk 'NR == 1' # (not head: under pipefail, an awk cut short by SIGPIPE fails the script)
}

# ---------------------------------------------------------------------------------------------
# The guest image. Everything that decides what the image contains is in the functions below
# and GUEST_PACKAGES: their text (and the added library packages) is the cache key.

guest_unit() {
    cat <<'EOF'
# Runs /vm-data/guest.sh (the harness's runner, on the data disk) once the boot has finished,
# then powers the machine off, whatever the runner's outcome.
[Unit]
Description=Forge VM test runner
Wants=vm\x2ddata.mount
After=vm\x2ddata.mount multi-user.target
SuccessAction=poweroff
FailureAction=poweroff

[Service]
# exec, not oneshot: the start job ends when the runner starts, so the boot finishes
# (systemctl is-system-running says running) and the tests run on a host that has booted.
Type=exec
ExecStart=/bin/bash /vm-data/guest.sh
StandardInput=null
StandardOutput=journal+console
StandardError=inherit
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
}

configure_guest() {
    local tree=$1 unit
    echo forge-vm >"$tree/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tforge-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$tree/etc/hosts"
    cat >"$tree/etc/fstab" <<'EOF'
LABEL=forge-root / ext4 rw,errors=remount-ro 0 0
LABEL=forge-data /vm-data ext4 rw,nofail,x-systemd.device-timeout=60s 0 0
EOF
    mkdir -p "$tree/vm-data"
    # root logs in on the console without a password (the guest has no network).
    sed -i 's/^root:[^:]*:/root::/' "$tree/etc/shadow"
    # A fixed machine id: with none, every boot of the throwaway overlay would be a "first boot"
    # (systemd-firstboot, preset-all).
    tr -d '-' </proc/sys/kernel/random/uuid >"$tree/etc/machine-id"
    # As scripts/install-deps.sh: the ranges that `forge run --userns=auto` hands out.
    for file in etc/subuid etc/subgid; do
        grep -q '^containers:' "$tree/$file" 2>/dev/null ||
            echo 'containers:2147483647:2147483648' >>"$tree/$file"
    done
    guest_unit >"$tree/etc/systemd/system/vm-runner.service"
    mkdir -p "$tree/etc/systemd/system/multi-user.target.wants"
    ln -sf /etc/systemd/system/vm-runner.service \
        "$tree/etc/systemd/system/multi-user.target.wants/vm-runner.service"
    # Nothing starts on its own while the tests run: no timers (their services would come and go
    # beside the runner's cgroup), no registry listening on :5000 (the tests start their own).
    for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer docker-registry.service; do
        rm -f "$tree"/etc/systemd/system/*.wants/"$unit"
        ln -sf /dev/null "$tree/etc/systemd/system/$unit"
    done
    rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
}

# Builds the image in $1 (empty): root.img (ext4 of the debootstrapped tree), vmlinuz, initrd.img.
build_guest() {
    local dir=$1 mirror=$2 tree=$1/rootfs packages
    packages=$(IFS=,; echo "${ALL_GUEST_PACKAGES[*]}")
    mkdir -p "$CACHE/debs"
    debootstrap --variant=minbase --components=main --include="$packages" \
        --cache-dir="$CACHE/debs" "$SUITE" "$tree" "$mirror" >"$dir/debootstrap.log" 2>&1 || {
        tail -n 30 "$dir/debootstrap.log" >&2
        die "debootstrap failed (full log: $dir/debootstrap.log)"
    }
    configure_guest "$tree"
    cp "$(printf '%s\n' "$tree"/boot/vmlinuz-* | sort -V | tail -n 1)" "$dir/vmlinuz"
    cp "$(printf '%s\n' "$tree"/boot/initrd.img-* | sort -V | tail -n 1)" "$dir/initrd.img"
    mkfs.ext4 -q -F -L forge-root -d "$tree" "$dir/root.img" 8G >/dev/null
    rm -rf "$tree"
}

# The packages of the libraries that $@ (executables) link, as dpkg knows them on the host.
library_packages() {
    local lib pkg
    ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
        sort -u | while read -r lib; do
        for path in "$lib" "$(readlink -f "$lib")"; do
            pkg=$(dpkg -S "$path" 2>/dev/null | awk -F: 'NR == 1 { print $1 }') && [[ -n $pkg ]] &&
                { echo "$pkg"; break; }
        done
    done | sort -u
}

# Sets GUEST to the directory of the image for this script's key, building it when missing.
# Each key has a directory of its own (guest-KEY: root.img, vmlinuz, initrd.img, image.key),
# renamed into place once complete, so concurrent runs never see half an image and a rebuild
# never pulls an image from under a running guest (qemu holds its files open).
ensure_guest() {
    local key mirror build old
    key=$(
        {
            declare -f guest_unit configure_guest build_guest
            printf '%s\n' "$SUITE" "${ALL_GUEST_PACKAGES[@]}"
        } | sha256sum | cut -d' ' -f1
    )
    GUEST=$CACHE/guest-${key:0:16}
    if ! guest_complete "$key"; then
        mkdir -p "$CACHE"
        exec 9>"$CACHE/build.lock"
        flock 9
    fi
    if guest_complete "$key"; then
        say "guest image: $GUEST/root.img (cached)"
    else
        mirror=${FORGE_VM_MIRROR:-$(host_mirror)}
        [[ -n $mirror ]] || die "no apt source for Debian $SUITE in /etc/apt/sources.list{,.d/}; set FORGE_VM_MIRROR"
        say "building the guest image (debootstrap $SUITE from $mirror; a few minutes)"
        local start=$SECONDS
        rm -rf "$CACHE"/build.* # a killed build's leftovers: the lock is ours
        build=$CACHE/build.$$
        mkdir -p "$build"
        build_guest "$build" "$mirror"
        echo "$key" >"$build/image.key"
        rm -rf "$GUEST" # an incomplete one
        mv -T "$build" "$GUEST"
        say "guest image built in $((SECONDS - start)) s: $GUEST"
        # Older keys' images: a guest booted from one keeps its open files.
        for old in "$CACHE"/guest-*; do
            [[ $old == "$GUEST" ]] || rm -rf "$old"
        done
    fi
    exec 9>&-
}

guest_complete() {
    [[ -f $GUEST/image.key && $(<"$GUEST/image.key") == "$1" && -f $GUEST/root.img &&
        -f $GUEST/vmlinuz && -f $GUEST/initrd.img ]]
}

# ---------------------------------------------------------------------------------------------
# Forge and the data disk

# Builds Forge (and, unless --exec, the end-to-end test binaries); sets BINS (executables of the
# workspace) and TEST_NAMES/TEST_PATHS (the tests/ crate's integration test binaries).
build_forge() {
    local json
    cd "$ROOT"
    say "building Forge (cargo build --workspace)"
    json=$(cargo build --workspace --message-format=json)
    mapfile -t BINS < <(jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' <<<"$json" | sort -u)
    TEST_NAMES=() TEST_PATHS=()
    if [[ -z $EXEC ]]; then
        say "building the end-to-end tests (cargo test -p forge-tests --no-run)"
        json=$(cargo test -p forge-tests --no-run --message-format=json)
        local name path
        while IFS=$'\t' read -r name path; do
            TEST_NAMES+=("$name") TEST_PATHS+=("$path")
        done < <(jq -r 'select(.reason == "compiler-artifact" and .executable != null
                and .target.kind == ["test"]) | [.target.name, .executable] | @tsv' <<<"$json" | sort)
        ((${#TEST_NAMES[@]})) || die "cargo listed no test binary of forge-tests"
    fi
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
}

# Keeps only the test binaries named on the command line (names of tests/tests/*.rs).
select_tests() {
    SCOPE_SKIP=()
    if ((${#WANT[@]} == 0)); then
        SCOPE_SKIP=("${SERVICE_PASS_ONLY[@]}")
        return 0
    fi
    local want i names=() paths=() found
    for want in "${WANT[@]}"; do
        found=
        for i in "${!TEST_NAMES[@]}"; do
            [[ ${TEST_NAMES[$i]} == "$want" ]] && names+=("$want") paths+=("${TEST_PATHS[$i]}") found=1
        done
        [[ -n $found ]] || die "no test binary '$want' (have: ${TEST_NAMES[*]})"
    done
    TEST_NAMES=("${names[@]}") TEST_PATHS=("${paths[@]}")
}

# Copies $1 to the same absolute path under $2 (a hard link when it can).
stage_file() {
    mkdir -p "$2$(dirname "$1")"
    ln -f "$1" "$2$1" 2>/dev/null || cp -a "$1" "$2$1"
}

# The data disk: the checkout (without target/ and .git) and the built executables at their
# absolute host paths under tree/, the guest runner, its settings, and results/ for its output.
make_data_disk() {
    local stage=$OUT/stage tree=$OUT/stage/tree file size
    rm -rf "$stage" "$OUT/data.img" "$OUT/results"
    mkdir -p "$tree$ROOT" "$stage/results"
    local excludes=(--exclude=./.git --exclude=./target)
    [[ $TARGET_DIR != "$ROOT"/* ]] || excludes+=(--exclude="./${TARGET_DIR#"$ROOT"/}")
    [[ $OUT != "$ROOT"/* ]] || excludes+=(--exclude="./${OUT#"$ROOT"/}")
    tar -C "$ROOT" "${excludes[@]}" -cf - . | tar -C "$tree$ROOT" -xf -
    for file in "${BINS[@]}" "${TEST_PATHS[@]}"; do
        stage_file "$file" "$tree"
    done
    cp "$ROOT/scripts/vm-guest.sh" "$stage/guest.sh"
    # The guest bind-mounts each of these at the same path; the target directory may be
    # outside the checkout (CARGO_TARGET_DIR).
    GUEST_ROOTS=("$ROOT")
    [[ $TARGET_DIR == "$ROOT"/* ]] || GUEST_ROOTS+=("$TARGET_DIR")
    TEST_ARGS=()
    [[ -z ${FORGE_VM_ARGS:-} ]] || read -r -a TEST_ARGS <<<"$FORGE_VM_ARGS"
    {
        printf 'PROJECT=%q\n' "$ROOT"
        printf 'BIN_DIR=%q\n' "$(dirname "${BINS[0]}")"
        printf 'BIN_TIMEOUT=%q\n' "$BIN_TIMEOUT"
        printf 'MODE=%q\n' "$([[ -n $EXEC ]] && echo exec || echo tests)"
        if [[ -n ${FORGE_VM_CGROUP_MANAGER+set} ]]; then
            printf 'CGROUP_MANAGER=%q\n' "$FORGE_VM_CGROUP_MANAGER"
        fi
        declare -p PASSES_WANTED GUEST_ROOTS TEST_ARGS TEST_NAMES TEST_PATHS SCOPE_SKIP
    } >"$stage/vm.env"
    [[ -z $EXEC ]] || printf '%s\n' "$EXEC" >"$stage/exec.sh"
    size=$(du -sm "$stage" | cut -f1)
    mkfs.ext4 -q -F -L forge-data -d "$stage" "$OUT/data.img" "$((size + size / 4 + 512))M" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Boot and watch

QEMU_PID=
TAIL_PID=
cleanup() {
    [[ -z $TAIL_PID ]] || kill "$TAIL_PID" 2>/dev/null || true
    [[ -z $QEMU_PID ]] || kill "$QEMU_PID" 2>/dev/null || true
}

# Boots the guest; prints the runner's marked lines as they come. Sets GUEST_END to one of
# poweroff, timeout, hung-after-done.
boot_guest() {
    local log=$OUT/serial.log append
    append="root=LABEL=forge-root rw console=ttyS0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
    append+=" quiet panic=1 fsck.mode=skip systemd.mask=serial-getty@ttyS0.service"
    append+=" ${FORGE_VM_APPEND:-}"
    : >"$log"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    say "booting the guest (qemu TCG, serial log: $log, timeout ${TIMEOUT} s)"
    qemu-system-x86_64 -accel tcg -cpu max -smp "${FORGE_VM_SMP:-2}" -m "${FORGE_VM_MEMORY:-4096}" \
        -nographic -monitor none -serial "file:$log" -no-reboot -nic none \
        -device virtio-rng-pci \
        -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" -append "$append" \
        -drive "file=$GUEST/root.img,format=raw,if=virtio,snapshot=on" \
        -drive "file=$OUT/data.img,format=raw,if=virtio" </dev/null >"$OUT/qemu.out" 2>&1 &
    QEMU_PID=$!
    tail -n +1 -f "$log" 2>/dev/null | sed -u -n 's/\r$//; s/^.*FORGE-VM: /vm: /p' &
    TAIL_PID=$!
    local start=$SECONDS done_at=
    GUEST_END=poweroff
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        sleep 1
        if ((SECONDS - start > TIMEOUT)); then
            GUEST_END=timeout
            break
        fi
        if [[ -z $done_at ]] && grep -q 'FORGE-VM: DONE' "$log"; then
            done_at=$SECONDS
        elif [[ -n $done_at ]] && ((SECONDS - done_at > 120)); then
            GUEST_END=hung-after-done
            break
        fi
    done
    if [[ $GUEST_END != poweroff ]]; then
        kill "$QEMU_PID" 2>/dev/null || true
    fi
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
    sleep 1
    kill "$TAIL_PID" 2>/dev/null || true
    wait "$TAIL_PID" 2>/dev/null || true
    TAIL_PID=
    GUEST_SECS=$((SECONDS - start))
    say "guest ended ($GUEST_END) after $GUEST_SECS s"
    printf 'GUEST_END=%q\nGUEST_SECS=%q\n' "$GUEST_END" "$GUEST_SECS" >"$OUT/guest.env"
    # The runner's full output, from the data disk (debugfs reads it without mounting).
    if [[ $GUEST_END != poweroff ]]; then
        e2fsck -fy "$OUT/data.img" >/dev/null 2>&1 || true
    fi
    rm -rf "$OUT/results"
    debugfs -R "rdump /results $OUT" "$OUT/data.img" >/dev/null 2>&1
    [[ -d $OUT/results ]] || say "could not read the results from the data disk"
    # The marked lines, without the console's carriage returns.
    sed -n 's/\r$//; s/^.*FORGE-VM: //p' "$log" >"$OUT/markers.txt"
}

# ---------------------------------------------------------------------------------------------
# Report

# One line per failed test of a test binary's output: its name, the first line of its panic
# message and the first line that the failing command wrote to stderr (libtest's failures
# section, as the tests' helpers print it).
failure_summary() {
    awk '
        function flush() { if (name != "") printf "    %s: %s%s\n", name, msg, (err != "" ? "  [stderr: " err "]" : "") }
        /^failures:$/ { sections++; if (sections == 2) { flush(); name = ""; exit } next }
        sections != 1 { next }
        /^---- .* stdout ----$/ { flush(); name = $2; msg = err = ""; want = "" ; next }
        want == "msg" { msg = $0; want = ""; next }
        want == "err" && $0 != "" { err = $0; want = ""; next }
        / panicked at / && msg == "" { want = "msg"; next }
        /^--- stderr ---$/ && err == "" { want = "err"; next }
        END { if (sections == 1) flush() }' "$1"
}

# The lines of a test binary's output worth showing for a failure: libtest's failures section
# (each failed test's first lines), else the end of the output.
failure_excerpt() {
    local file=$1 max=${FORGE_VM_FAIL_LINES:-60}
    if grep -q '^failures:$' "$file"; then
        awk -v max="$max" '/^failures:$/ { n++ } n == 1 && /^---- .* stdout ----$/ { lines = 0 }
             n == 1 && lines++ < 12 && shown++ < max' "$file"
    else
        tail -n 60 "$file"
    fi
}

in_scope_skip() {
    local skip
    for skip in "${SCOPE_SKIP[@]}"; do
        [[ $skip != "$1" ]] || return 0
    done
    return 1
}

report_tests() {
    local pass i name line rc secs result passed failed total_passed=0 total_failed=0 bad=0
    local failing=() table=()
    for pass in "${PASSES_WANTED[@]}"; do
        for i in "${!TEST_NAMES[@]}"; do
            name=${TEST_NAMES[$i]}
            if [[ $pass == scope ]] && in_scope_skip "$name"; then
                table+=("$(printf 'vm: %-8s %-10s  not run in this pass (service pass only)' "$pass" "$name")")
                continue
            fi
            line=$(grep -m1 "^RESULT $pass $name " "$OUT/markers.txt" || true)
            if [[ -z $line ]]; then
                table+=("$(printf 'vm: %-8s %-10s  did not report (counted as 1 failed)' "$pass" "$name")")
                total_failed=$((total_failed + 1)) bad=1
                failing+=("$pass/$name")
                continue
            fi
            rc=$(sed -n 's/.* rc=\([0-9]*\) .*/\1/p' <<<"$line")
            secs=$(sed -n 's/.* secs=\([0-9]*\).*/\1/p' <<<"$line")
            result=$(sed -n 's/.*| //p' <<<"$line")
            if [[ $result == "test result:"* ]]; then
                passed=$(grep -oE '[0-9]+ passed' <<<"$result" | grep -oE '[0-9]+')
                failed=$(grep -oE '[0-9]+ failed' <<<"$result" | grep -oE '[0-9]+')
            else
                passed=0 failed=1
                result="no test result line (exit $rc$( ((rc == 124)) && echo ": timed out after $BIN_TIMEOUT s")), counted as 1 failed"
            fi
            total_passed=$((total_passed + passed)) total_failed=$((total_failed + failed))
            if ((rc != 0 || failed > 0)); then
                bad=1
                failing+=("$pass/$name")
            fi
            table+=("$(printf 'vm: %-8s %-10s %4s s  %s' "$pass" "$name" "$secs" "$result")")
        done
    done
    local what log
    for what in "${failing[@]}"; do
        log=$OUT/results/$what.log
        printf '\n===== vm: %s failed (full output: %s)\n' "$what" "$log"
        if [[ -f $log ]]; then
            failure_excerpt "$log"
        else
            echo "(no output on the data disk)"
        fi
    done
    if ((${#failing[@]})); then
        echo
        say "failed tests (first line of the panic, and of the failing command's stderr):"
        for what in "${failing[@]}"; do
            log=$OUT/results/$what.log
            echo "  $what"
            [[ ! -f $log ]] || failure_summary "$log"
        done
    fi
    echo
    printf '%s\n' "${table[@]}"
    if grep -qE '^(CGROUP-CHANGED|LEFTOVER|ERROR) ' "$OUT/markers.txt"; then
        bad=1
        say "the guest found cgroups outside Forge's own changed, or left behind, or an error"
        say "(snapshots of the passes' cgroups: $OUT/results/cgroups.txt):"
        grep -E '^(CGROUP-CHANGED|LEFTOVER|ERROR) ' "$OUT/markers.txt" | sed 's/^/vm:   /'
    fi
    if [[ $GUEST_END != poweroff ]]; then
        bad=1
        say "the guest did not power off by itself ($GUEST_END after $GUEST_SECS s); end of $OUT/serial.log:"
        serial_tail
    fi
    echo "vm: $total_passed passed, $total_failed failed"
    return "$bad"
}

# The end of the console log, without the firmware's terminal escapes.
serial_tail() {
    tail -n 40 "$OUT/serial.log" | sed 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[a-z]//g'
    echo
}

report_exec() {
    local status
    [[ ! -f $OUT/results/exec.log ]] || cat "$OUT/results/exec.log"
    status=$(sed -n 's/^EXEC-STATUS //p' "$OUT/markers.txt" | tail -n 1)
    if [[ -z $status ]]; then
        say "the guest did not report the commands' exit status ($GUEST_END after $GUEST_SECS s); end of $OUT/serial.log:" >&2
        serial_tail >&2
        return 125
    fi
    return "$status"
}

# ---------------------------------------------------------------------------------------------

# --report: the report of the last run in $OUT again, without building or booting anything.
report_again() {
    [[ -f $OUT/stage/vm.env && -f $OUT/guest.env ]] || die "no earlier run in $OUT"
    local MODE
    # shellcheck source=/dev/null
    source "$OUT/stage/vm.env"
    # shellcheck source=/dev/null
    source "$OUT/guest.env"
    if [[ $MODE == exec ]]; then
        report_exec
    else
        report_tests
    fi
    exit
}

main() {
    local pass=all
    EXEC='' WANT=()
    while (($#)); do
        case $1 in
            --pass) pass=${2:?--pass needs service, scope or all}; shift 2 ;;
            --pass=*) pass=${1#--pass=}; shift ;;
            --exec) EXEC=${2:?--exec needs shell commands}; shift 2 ;;
            --exec=*) EXEC=${1#--exec=}; shift ;;
            --report) report_again ;;
            -h | --help) usage ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) WANT+=("$1"); shift ;;
        esac
    done
    case $pass in
        service | scope | root) PASSES_WANTED=("$pass") ;;
        all) PASSES_WANTED=(service scope) ;;
        *) die "--pass must be service, scope, all or root, not '$pass'" ;;
    esac
    if [[ -n $EXEC ]]; then
        ((${#WANT[@]} == 0)) || die "--exec takes no test binary names"
        [[ $pass != all ]] || PASSES_WANTED=(service)
    fi
    [[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, and the tests in the guest need it)"
    command -v cargo >/dev/null || die "cargo not found; install the Rust toolchain first"

    install_host_tools
    build_forge
    select_tests
    ALL_GUEST_PACKAGES=("${GUEST_PACKAGES[@]}")
    mapfile -t -O "${#ALL_GUEST_PACKAGES[@]}" ALL_GUEST_PACKAGES < <(library_packages "${BINS[@]}" "${TEST_PATHS[@]}")
    mapfile -t ALL_GUEST_PACKAGES < <(printf '%s\n' "${ALL_GUEST_PACKAGES[@]}" | sort -u)
    ensure_guest
    mkdir -p "$OUT"
    make_data_disk
    boot_guest
    if [[ -n $EXEC ]]; then
        report_exec
    else
        report_tests
    fi
}

main "$@"
