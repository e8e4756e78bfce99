//! forge-netd: host networking for Forge containers.
//!
//! Empty until the networking issue lands: bridges, IPAM, veth pairs and nftables will live here.
//! Containers run with `--net none` (their own network namespace with only `lo`) until then.
