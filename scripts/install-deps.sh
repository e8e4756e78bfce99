#!/usr/bin/env bash
# Installs what building, testing and benchmarking Forge needs on Debian 12, as root.
# Idempotent: skips apt when every command is already there.
set -euo pipefail

packages=(busybox-static runc hyperfine jq iproute2 tmux strace e2fsprogs
    pkg-config libnftnl-dev libmnl-dev libseccomp-dev nftables skopeo umoci docker-registry
    apache2-utils openssl)
tools=(runc hyperfine jq ip tmux strace mkfs.ext4 skopeo umoci docker-registry htpasswd openssl)
# --bench: also the peers the benchmarks compare against (bench/*.sh).
if [[ ${1:-} == --bench ]]; then
    packages+=(podman netavark iperf3 iptables podman-compose)
    tools+=(podman iperf3 iptables podman-compose)
fi
need=()
# Built against by the nftnl crate (through pkg-config) and the libseccomp crate (seccomp
# profiles); nft itself is only used by tests.
for pkg in pkg-config libnftnl-dev libmnl-dev libseccomp-dev nftables; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v busybox >/dev/null || need+=(busybox-static)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
# busybox must be the static build: the default image copies it without libraries.
if command -v busybox >/dev/null && ldd "$(command -v busybox)" >/dev/null 2>&1; then
    need+=(busybox-static)
fi
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${packages[@]}" >/dev/null
fi
# `forge run --userns=auto` hands out ranges of the subordinate IDs of user `containers`
# (podman's convention and its documented default range, far above the IDs useradd gives out).
for file in /etc/subuid /etc/subgid; do
    grep -q '^containers:' "$file" 2>/dev/null || echo 'containers:2147483647:2147483648' >>"$file"
done
if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found; install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi
