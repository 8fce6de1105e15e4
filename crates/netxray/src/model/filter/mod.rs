//! Packet filters: an expression tree compiled to the small cBPF-like program
//! the kernel runs at every hook (`struct nx_filter_insn` in abi.h).
//!
//! Today the expression is built from the trace flags (`--proto`, `--addr`,
//! `--port`, ...); the tcpdump language will parse into the same [`Expr`]
//! and reuse the code generator unchanged.

mod codegen;
pub mod ebpf;
mod interp;

pub use codegen::{compile, CompileError};
pub use interp::{run, PacketView};

use std::net::IpAddr;

/// Source, destination, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
}

/// An address prefix (CIDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    /// Parse `198.18.0.1`, `198.18.0.0/15`, `2001:db8::/32`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("bad address '{s}': expected IPv4 or IPv6, optionally /prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("bad prefix length in '{s}': expected 0..={max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

/// L3/L4 protocols a filter can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Ip,
    Ip6,
    Arp,
    Tcp,
    Udp,
    Icmp,
    Icmp6,
    Sctp,
}

impl Proto {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "ip" | "ipv4" | "ip4" => Self::Ip,
            "ip6" | "ipv6" => Self::Ip6,
            "arp" => Self::Arp,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "icmp" => Self::Icmp,
            "icmp6" | "icmpv6" => Self::Icmp6,
            "sctp" => Self::Sctp,
            other => {
                return Err(format!(
                "unknown protocol '{other}' (expected ip, ip6, arp, tcp, udp, icmp, icmp6, sctp)"
            ))
            }
        })
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    True,
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Proto(Proto),
    Host(Dir, Net),
    /// Inclusive port range.
    Port(Dir, u16, u16),
}

impl Expr {
    pub fn and(self, other: Expr) -> Expr {
        match (self, other) {
            (Expr::True, e) | (e, Expr::True) => e,
            (a, b) => Expr::And(Box::new(a), Box::new(b)),
        }
    }
}

/// Parse a port or a port range `lo-hi`.
pub fn parse_port(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("bad port '{s}': expected 0..=65535 or a range lo-hi");
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let p = s.parse::<u16>().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}
