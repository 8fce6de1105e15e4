//! One module per subcommand: its run function and little else.

pub mod doctor;
pub mod filter;
pub mod hooks;
pub mod trace;
