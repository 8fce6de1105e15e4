//! Pure domain types and decoding: packets, hooks, drop reasons.

pub mod packet;
pub mod hook;
pub mod filter;
pub mod event;
pub mod packet_fields;
