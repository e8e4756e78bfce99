//! forge-supervisor: runs the services of a compose.toml over time.
//!
//! Empty until the supervisor issue lands: parsing, dependency order, restart policy and backoff,
//! health checks and shutdown will live here, on top of `forge-runtime`'s library API.
