//! The portal side: the DVCQG client and delivery from the outbox.

pub mod client;
pub mod delivery;
