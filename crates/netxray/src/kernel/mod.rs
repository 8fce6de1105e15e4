//! Everything that talks to the kernel: probing, loading, attaching, draining.

pub mod btf;
pub mod caps;
pub mod conn;
pub mod filter_twin;
pub mod kallsyms;
pub mod l7;
pub mod loadcheck;
pub mod netfilter;
pub mod netns;
pub mod nfhooks;
pub mod nftables;
pub mod probe;
pub mod ring;
pub mod session;
pub mod stats;
pub mod sys;
pub mod tc;
pub mod trace;
pub mod xdp;
