//! One module per subcommand: its run function and little else.

pub mod conn;
pub mod doctor;
pub mod drops;
pub mod hooks;
pub mod run;
pub mod stats;
pub mod trace;
