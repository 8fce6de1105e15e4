//! Typed errors and exit codes.
//!
//! Library code returns [`Error`]; `main` maps it to an exit code: 2 for a
//! usage error (bad filter, unknown interface or namespace, unknown hook),
//! 1 for a runtime error (no privileges, no BTF, a kernel refusal).

use std::process::ExitCode;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The user asked for something that cannot be: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else that failed at run time: exit code 1.
    #[error("{0}")]
    Runtime(String),
    #[error("not enough privileges: {missing} is missing. Run as root, or grant the binary CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (e.g. `sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_admin+ep $(command -v netxray)`)")]
    Privileges { missing: String },
    #[error("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): netxray needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf,
    #[error("hook {hook} is not available on this kernel: {why}")]
    HookUnavailable { hook: String, why: String },
    #[error("{what}: {source}")]
    Kernel {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::Usage(msg.into())
    }

    pub fn kernel(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Kernel {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
