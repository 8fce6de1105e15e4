//! One module per subcommand: its run function and little else.

pub mod conn;
pub mod conn_top;
pub mod doctor;
pub mod drops;
pub mod filter;
pub mod hooks;
pub mod nft_trace;
pub mod run;
pub mod signals;
pub mod stats;
pub mod trace;
