//! The pure core: rules with no I/O, driven by tests directly.
//!
//! - `status`: the portal's status codes and the never-regress order.
//! - `attest`: an operator's attested finish, applied to the canonical state.
//! - `record`: the canonical record every adapter maps to.
//! - `descriptor` / `mapping`: adapter descriptors and mapping a payload through one.
//! - `timefmt`: the time formats the systems speak.
//! - `cutover` / `merge`: dual-running authority and the one canonical dossier per case.
//! - `identity`: linking by applicant identity (a keyed hash) where codes are not shared.
//! - `link`: which case a record belongs to, from the candidates the store gathers.
//! - `calendar`: the working-time calendar, due times and the on-time verdict.
//! - `procedures`: each procedure's time limit.
//! - `deadline`: the bridge's own due time checked against the source's (cross-checks).
//! - `resync`: the scope of a re-sync request.
//! - `payload`: the portal's objects built from the canonical state.
//! - `privacy`: masking personal data for logs.
//! - `verify`: the portal's copy of a dossier against the canonical state (what differs).

pub mod attest;
pub mod calendar;
pub mod cutover;
pub mod deadline;
pub mod descriptor;
pub mod identity;
pub mod link;
pub mod mapping;
pub mod merge;
pub mod payload;
pub mod privacy;
pub mod procedures;
pub mod record;
pub mod resync;
pub mod status;
pub mod timefmt;
pub mod verify;
