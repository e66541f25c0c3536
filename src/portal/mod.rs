//! The portal side: the DVCQG client, delivery from the outbox, and the verify sweep that reads
//! dossiers back.

pub mod client;
pub mod delivery;
pub mod verify;
