//! One module per subcommand: its run function and little else; `run.rs`
//! is the run driver the long-running ones share, `l7.rs` what `dns` and
//! `http` share on top of it.

pub mod conn;
pub mod dns;
pub mod doctor;
pub mod drops;
pub mod hooks;
pub mod http;
pub mod l7;
pub mod run;
pub mod stats;
pub mod trace;
