//! Everything that talks to the kernel: probing, loading, attaching, draining.

pub mod probe;
