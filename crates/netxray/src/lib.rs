//! netxray: an x-ray for the Linux network stack.
//!
//! Data flows one way: [`cli`] arguments -> a typed config -> a [`kernel`]
//! session (load, attach, configure maps) -> raw records -> [`model`]
//! (decode) -> [`output`] (print). [`cmd`] holds one module per subcommand
//! that wires those steps together.

pub mod cli;
pub mod cmd;
pub mod error;
pub mod kernel;
pub mod model;
pub mod output;
