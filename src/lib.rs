//! dvc-bridge keeps the National Public Service Portal (Cổng DVCQG) in sync with a city's procedure
//! system and the ministries' centralised systems during dual running.
//!
//! # Layout
//!
//! - [`core`]: pure rules — descriptor mapping, identity and merge, portal payloads, status order.
//! - [`clock`]: the time rules read (system, or simulated for the demo and tests).
//! - [`config`]: typed configuration, secrets, and `check-config` diagnostics.
//! - [`store`]: SQLite — migrations, source records, dossiers, outbox, sync log, the writer lease.
//! - [`source`]: polling one upstream system: auth, pagination, cursor, retries.
//! - [`net`]: HTTP plumbing shared by sources and portal: error classes, retries, rate limits.
//! - [`portal`]: the DVCQG client, delivery from the outbox, the verify sweep (read back, repair).
//! - [`daemon`]: wiring the tasks together, signals, systemd notification.
//! - [`resync`]: carrying out re-sync requests (in the daemon, or `resync --now`).
//! - [`watch`]: the deadline watch (open dossiers coming due or past due, logged once each).
//! - [`retention`]: pruning the sync log past its retention, keeping the chain verifiable.
//! - [`metrics`]: Prometheus metrics at `/metrics`, health at `/healthz`.
//! - [`cli`]: one module per command-line verb.
//! - [`sim`]: the simulated city, ministry and portal (demo and tests only; no production module
//!   uses it).

pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod failpoint;
pub mod metrics;
pub mod net;
pub mod portal;
pub mod resync;
pub mod retention;
pub mod sim;
pub mod source;
pub mod stats;
pub mod store;
pub mod watch;
