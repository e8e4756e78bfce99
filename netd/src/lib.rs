//! forge-netd: host networking for Forge containers.
//!
//! So far: IPAM ([`ipam`]), file-locked and persistent. Bridges, veth pairs, nftables and
//! published ports (the networking issue) are still to come; until then containers run with
//! `--net none` (their own network namespace with only `lo`).

pub mod ipam;
