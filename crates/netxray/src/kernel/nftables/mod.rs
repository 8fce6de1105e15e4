//! nftables tracing (`--nft-trace`): which table, chain and rule a packet
//! met, and the verdict, from the kernel's own trace messages.
//!
//! How: in the namespace watched, netxray adds tables of its own
//! (`inet netxray_<pid>`, and `bridge netxray_<pid>` when the kernel has the
//! bridge family) whose base chains at prerouting and output, at the
//! earliest priority, hold one rule, `meta nftrace set 1`. Every packet
//! entering or leaving the namespace then carries the trace bit, and
//! nf_tables reports each rule it matches, each chain policy, each return,
//! on the netlink group NFNLGRP_NFTRACE (what `nft monitor trace` prints).
//! The user-space filter picks the packets to show.
//!
//! The tables are created with NFT_TABLE_F_OWNER by a control socket netxray
//! keeps open: the kernel deletes them when that socket closes, whatever
//! ends the process (exit, signal, SIGKILL). Nothing to clean up by hand;
//! `netxray doctor` reports any `netxray_*` table it finds.
//!
//! Kernels before 5.12 (Debian 11's 5.10) refuse the owner flag (EINVAL):
//! there the tables are made without it and deleted when the tracer is
//! dropped (exit, Ctrl-C, SIGTERM). After a SIGKILL they stay; the next
//! `--nft-trace` in that namespace deletes every ownerless `netxray_<pid>`
//! table whose process is gone, before it makes its own.
//!
//! nfnetlink is spoken through netxray's own netlink layer
//! ([`crate::kernel::sys::netlink`]): no crate for it builds offline here, and
//! the few messages needed are short.

pub mod ruleset;
pub mod trace;

pub mod watch;

use crate::kernel::sys::netlink::{self, socket, NlSocket};
use crate::model::nft::{family, NftTrace};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// NFNLGRP_NFTRACE: the multicast group of trace messages.
const NFNLGRP_NFTRACE: u32 = 9;

/// What went wrong talking to nf_tables.
#[derive(Debug, Error)]
pub enum NftError {
    #[error("{what}: {source}: nftables tracing needs CAP_NET_ADMIN in that network namespace")]
    Permission { what: String, source: io::Error },
    #[error("{what}: {source}: this kernel lacks nftables (CONFIG_NF_TABLES), nfnetlink or this table family")]
    Unavailable { what: String, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("nftables: undecodable netlink message: {0}")]
    Decode(String),
}

impl NftError {
    pub fn from_io(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Self::Permission { what, source },
            Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => {
                Self::Unavailable { what, source }
            }
            _ => Self::Io { what, source },
        }
    }
}

impl From<NftError> for crate::error::Error {
    fn from(e: NftError) -> Self {
        match e {
            NftError::Permission { .. } => crate::error::Error::Privileges {
                missing: "CAP_NET_ADMIN (for --nft-trace)".into(),
            },
            e => crate::error::Error::kernel("--nft-trace", e),
        }
    }
}

/// Run `f` in the namespace at `path` (or here).
fn in_ns<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, NftError> {
    match netns {
        None => f().map_err(|e| NftError::from_io("opening a NETLINK_NETFILTER socket", e)),
        Some(p) => crate::kernel::netns::in_netns(p, f)
            .and_then(|r| r)
            .map_err(|e| {
                NftError::from_io(
                    format!("opening a NETLINK_NETFILTER socket in {}", p.display()),
                    e,
                )
            }),
    }
}

/// Two netlink sockets of one namespace: control (requests) and trace
/// (the multicast group).
fn open_sockets(netns: Option<&Path>) -> Result<(NlSocket, NlSocket), NftError> {
    in_ns(netns, || {
        let control = NlSocket::open(libc::NETLINK_NETFILTER)?;
        control.set_recv_timeout(Duration::from_secs(5))?;
        let trace = NlSocket::open(libc::NETLINK_NETFILTER)?;
        Ok((control, trace))
    })
}

/// Tracing in one namespace: the tables (alive as long as this value) and
/// the subscription.
#[derive(Debug)]
pub struct NftTracer {
    /// Owns the tables: when it closes, the kernel deletes them (when
    /// `owned`; else they are deleted through it on drop).
    control: NlSocket,
    /// Whether the kernel took the owner flag.
    pub owned: bool,
    trace: NlSocket,
    /// `netxray_<pid>`.
    pub table: String,
    /// The families given a table.
    pub families: Vec<u8>,
    /// Families left out, and why (the bridge family is optional).
    pub skipped: Vec<(u8, String)>,
    buf: Vec<u8>,
    /// Times the kernel reported messages lost (ENOBUFS: buffer full).
    pub overruns: u64,
    pub undecodable: u64,
}

impl NftTracer {
    /// Subscribe to trace messages, then add the tracing tables, in the
    /// namespace at `netns` (netxray's own when `None`), marking packets of
    /// the L4 protocols `protos` (all packets when empty).
    pub fn open(netns: Option<&Path>, protos: &[u8]) -> Result<Self, NftError> {
        let (control, trace) = open_sockets(netns)?;
        trace.grow_rcvbuf(socket::TRACE_RCVBUF);
        trace
            .join_group(NFNLGRP_NFTRACE)
            .map_err(|e| NftError::from_io("joining the nftables trace group", e))?;
        let table = format!("{}{}", ruleset::TABLE_PREFIX, std::process::id());
        remove_stale(&control);
        let mut families = Vec::new();
        let mut skipped = Vec::new();
        // Test knob: behave as on a kernel without owner tables (5.10).
        let mut owned = std::env::var_os("NETXRAY_NFT_NO_OWNER").is_none();
        for (fam, chains) in ruleset::TRACE_TABLES {
            let mut made = ruleset::install(&control, *fam, &table, chains, protos, owned);
            if families.is_empty() && owned && is_einval(&made) {
                // No owner tables before 5.12: ours to delete.
                tracing::debug!("nftables refused the owner flag: tables deleted on exit");
                owned = false;
                made = ruleset::install(&control, *fam, &table, chains, protos, owned);
            }
            match made {
                Ok(()) => families.push(*fam),
                // The first (inet) is required; others only add coverage.
                Err(e) if !families.is_empty() => skipped.push((*fam, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            control,
            owned,
            trace,
            table,
            families,
            skipped,
            buf: vec![0u8; 256 * 1024],
            overruns: 0,
            undecodable: 0,
        })
    }

    /// The messages waiting, without blocking (at most `max` datagrams).
    pub fn read(&mut self, out: &mut Vec<NftTrace>, max: usize) -> Result<(), NftError> {
        for _ in 0..max {
            let n = match self.trace.recv(&mut self.buf, true) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    continue;
                }
                Err(e) => return Err(NftError::from_io("reading nftables trace messages", e)),
            };
            let Ok(msgs) = netlink::messages(&self.buf[..n]) else {
                self.undecodable += 1;
                continue;
            };
            for m in msgs {
                match trace::decode(&m) {
                    Ok(Some(t)) => out.push(t),
                    Ok(None) => {}
                    Err(_) => self.undecodable += 1,
                }
            }
        }
        Ok(())
    }

    /// The family names given a table, for messages: `inet, bridge`.
    pub fn families_text(&self) -> String {
        self.families
            .iter()
            .map(|f| family::name(*f))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Drop for NftTracer {
    fn drop(&mut self) {
        if self.owned {
            return;
        }
        for (i, fam) in self.families.iter().enumerate() {
            if let Err(e) = ruleset::delete(&self.control, *fam, &self.table, 9000 + 10 * i as u32)
            {
                tracing::warn!("{e}");
            }
        }
    }
}

fn is_einval(r: &Result<(), NftError>) -> bool {
    matches!(r, Err(NftError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL))
}

/// Delete the ownerless `netxray_<pid>` tables of processes that are gone
/// (left by a SIGKILL on a kernel without owner tables).
fn remove_stale(control: &NlSocket) {
    let Ok(tables) = ruleset::list_tables(control) else {
        return;
    };
    for (i, t) in tables.iter().enumerate() {
        let Some(pid) = t.name.strip_prefix(ruleset::TABLE_PREFIX) else {
            continue;
        };
        let gone = pid
            .parse::<u32>()
            .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if t.owner.is_none() && gone {
            match ruleset::delete(control, t.family, &t.name, 8000 + 10 * i as u32) {
                Ok(()) => tracing::info!(
                    "deleted nftables table {} {} left by a killed netxray",
                    family::name(t.family),
                    t.name
                ),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

impl AsRawFd for NftTracer {
    fn as_raw_fd(&self) -> RawFd {
        self.trace.as_raw_fd()
    }
}

/// The `netxray_*` tables of the namespace at `netns` (here when `None`).
pub fn netxray_tables(netns: Option<&Path>) -> Result<Vec<ruleset::TableInfo>, NftError> {
    let (control, _) = open_sockets(netns)?;
    Ok(ruleset::list_tables(&control)?
        .into_iter()
        .filter(|t| t.name.starts_with(ruleset::TABLE_PREFIX))
        .collect())
}
