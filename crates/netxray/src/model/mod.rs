//! Pure domain types and decoding: packets, hooks, drop reasons,
//! connections, and application messages (`l7/`: DNS and HTTP).

pub mod conn;
pub mod correlate;
pub mod doctor;
pub mod drops;
pub mod event;
/// The filter compiler and evaluator, a crate of its own; here under its
/// old path, so `netxray::model::filter::Filter` keeps working.
pub use netxray_filter as filter;
pub mod fmt;
pub mod hook;
pub mod journey;
pub mod l7;
pub mod nft;
pub mod packet;
pub mod packet_fields;
pub mod stats;
pub mod value;
