//! Pure domain types and decoding: packets, hooks, drop reasons.

pub mod packet;
