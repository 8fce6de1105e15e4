//! Pure domain types and decoding: packets, hooks, drop reasons.

pub mod conn;
pub mod correlate;
pub mod drops;
pub mod event;
pub mod filter;
pub mod fmt;
pub mod hook;
pub mod journey;
pub mod nft;
pub mod packet;
pub mod packet_fields;
pub mod stats;
pub mod value;
