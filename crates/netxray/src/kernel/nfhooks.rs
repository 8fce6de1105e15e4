//! Where netfilter can drop in a namespace, so that `drops` attaches its
//! attribution links only there: a namespace without rules (most containers,
//! the sender of a flood) then costs nothing.
//!
//! Precisely, per hook: the kernel's nfnetlink_hook dump (5.14+ with
//! CONFIG_NETFILTER_NETLINK_HOOK, what `nft list hooks` shows). Without it
//! (this development kernel): the hooks of the namespace's nftables base
//! chains (an `inet` chain covers both families) and of its legacy x_tables
//! tables (by table: filter, nat, mangle, raw, security). A drop by
//! conntrack or defrag at a hook without a chain is then not attributed.
//! Both over a NETLINK_NETFILTER socket and /proc files opened inside the
//! namespace and kept open.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_HOOK: u16 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFPROTO_INET: u8 = 1;
const NFNL_MSG_HOOK_GET: u16 = 0;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFNLA_HOOK_HOOKNUM: u16 = 1;
const NFNLA_HOOK_PRIORITY: u16 = 2;
const NFNLA_HOOK_FUNCTION_NAME: u16 = 4;
const NFNLA_HOOK_CHAIN_INFO: u16 = 6;
const NFNLA_HOOK_INFO_TYPE: u16 = 2;
const NFNL_HOOK_TYPE_BPF: u32 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One function registered at a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEntry {
    pub priority: i32,
    pub function: String,
    /// A BPF program (a netfilter link).
    pub bpf: bool,
}

/// A netlink socket in one namespace, for hook dumps.
pub struct HookQuery {
    fd: OwnedFd,
    seq: u32,
    /// /proc/net/{ip,ip6}_tables_names of the namespace (those that
    /// exist) with their family, re-read from the start each time.
    legacy: Vec<(u8, std::fs::File)>,
    /// The hook dump works here (None: not tried yet).
    per_hook: Option<bool>,
}

/// The (family, hook) pairs of the inet hooks.
fn all_hooks() -> Vec<(u8, u8)> {
    [2u8, 10]
        .iter()
        .flat_map(|&pf| (0..5).map(move |h| (pf, h)))
        .collect()
}

impl HookQuery {
    /// Open in the calling thread's namespace (the socket stays in it).
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let legacy = [(2u8, "ip_tables_names"), (10, "ip6_tables_names")]
            .iter()
            .filter_map(|(pf, f)| {
                std::fs::File::open(format!("/proc/thread-self/net/{f}"))
                    .ok()
                    .map(|file| (*pf, file))
            })
            .collect();
        Ok(Self {
            fd,
            seq: 1,
            legacy,
            per_hook: None,
        })
    }

    /// The (family, hook) pairs where something other than netxray could
    /// drop a packet.
    pub fn hooks_in_use(&mut self) -> io::Result<Vec<(u8, u8)>> {
        if self.per_hook != Some(false) {
            let mut out = Vec::new();
            for (pf, h) in all_hooks() {
                match self.has_foreign(pf, h) {
                    Ok(true) => out.push((pf, h)),
                    Ok(false) => {}
                    // No nfnetlink_hook in this kernel.
                    Err(e) if self.per_hook.is_none() => {
                        tracing::debug!("netfilter hook dump unavailable ({e}): per namespace");
                        self.per_hook = Some(false);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.per_hook != Some(false) {
                self.per_hook = Some(true);
                return Ok(out);
            }
        }
        self.chain_hooks()
    }

    /// The hooks of the base chains: nftables (all families but netxray's
    /// own tables) and legacy x_tables tables.
    pub fn chain_hooks(&mut self) -> io::Result<Vec<(u8, u8)>> {
        use std::io::{Read, Seek};
        let mut out = std::collections::BTreeSet::new();
        for (pf, f) in &mut self.legacy {
            let mut text = String::new();
            if f.rewind().is_ok() && f.read_to_string(&mut text).is_ok() {
                for table in text.lines() {
                    for h in legacy_table_hooks(table.trim()) {
                        out.insert((*pf, *h));
                    }
                }
            }
        }
        self.seq = self.seq.wrapping_add(1);
        let req = nft_dump(NFT_MSG_GETCHAIN, self.seq);
        for m in self.dump(&req)? {
            let Some((table, hook)) = chain_hook(&m) else {
                continue;
            };
            if table.starts_with("netxray_") || hook > 4 {
                continue;
            }
            match m.family {
                NFPROTO_INET => {
                    out.insert((2, hook));
                    out.insert((10, hook));
                }
                2 | 10 => {
                    out.insert((m.family, hook));
                }
                _ => {}
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Everything registered at (pf, hooknum).
    pub fn registered(&mut self, pf: u8, hooknum: u8) -> io::Result<Vec<HookEntry>> {
        self.seq = self.seq.wrapping_add(1);
        let req = request(pf, hooknum, self.seq);
        Ok(self.dump(&req)?.iter().map(hook_entry).collect())
    }

    /// Send a dump request; the replies.
    fn dump(&mut self, req: &[u8]) -> io::Result<Vec<Msg>> {
        // SAFETY: send(2) of a buffer we own, on our socket (to the kernel:
        // an unbound netlink socket is autobound on first send).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: recv(2) into a buffer we own, at most its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            match parse(&buf[..n as usize], self.seq, &mut out)? {
                true => return Ok(out),
                false => continue,
            }
        }
    }

    /// Whether anything but netxray's own links (BPF at INT_MIN+1 or
    /// INT_MAX-1, any netxray's) is registered at (pf, hooknum).
    pub fn has_foreign(&mut self, pf: u8, hooknum: u8) -> io::Result<bool> {
        Ok(self
            .registered(pf, hooknum)?
            .iter()
            .any(|h| !(h.bpf && (h.priority == i32::MIN + 1 || h.priority == i32::MAX - 1))))
    }
}

/// The hooks a legacy x_tables table registers.
fn legacy_table_hooks(table: &str) -> &'static [u8] {
    match table {
        "filter" | "security" => &[1, 2, 3],
        "nat" => &[0, 1, 3, 4],
        "raw" => &[0, 3],
        "" => &[],
        _ => &[0, 1, 2, 3, 4], // mangle, and any other
    }
}

/// An nftables dump request (`NFT_MSG_GET*`), every family.
fn nft_dump(msg: u16, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&20u32.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m
}

fn request(pf: u8, hooknum: u8, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(28);
    m.extend_from_slice(&28u32.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_HOOK << 8) | NFNL_MSG_HOOK_GET).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version, res_id (be16).
    m.extend_from_slice(&[pf, 0, 0, 0]);
    // NFNLA_HOOK_HOOKNUM, big endian.
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&NFNLA_HOOK_HOOKNUM.to_ne_bytes());
    m.extend_from_slice(&(hooknum as u32).to_be_bytes());
    m
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Netlink attributes: (type, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty)) = (u16_at(b, 0), u16_at(b, 2)) {
        let len = len as usize;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty & NLA_TYPE_MASK, &b[4..len]));
        let next = (len + 3) & !3;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    out
}

/// One reply of a dump: the nfgenmsg family and the attributes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    family: u8,
    attrs: Vec<u8>,
}

fn hook_entry(m: &Msg) -> HookEntry {
    let mut h = HookEntry {
        priority: 0,
        function: String::new(),
        bpf: false,
    };
    for (t, v) in attrs(&m.attrs) {
        match t {
            NFNLA_HOOK_PRIORITY if v.len() >= 4 => {
                h.priority = i32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            }
            NFNLA_HOOK_FUNCTION_NAME => {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                h.function = String::from_utf8_lossy(&v[..end]).into_owned();
            }
            NFNLA_HOOK_CHAIN_INFO => {
                h.bpf = attrs(v).iter().any(|(t, v)| {
                    *t == NFNLA_HOOK_INFO_TYPE
                        && v.len() >= 4
                        && u32::from_be_bytes([v[0], v[1], v[2], v[3]]) == NFNL_HOOK_TYPE_BPF
                });
            }
            _ => {}
        }
    }
    h
}

/// A base chain's table and hook number (regular chains have no hook).
fn chain_hook(m: &Msg) -> Option<(String, u8)> {
    let mut table = None;
    let mut hook = None;
    for (t, v) in attrs(&m.attrs) {
        match t {
            NFTA_CHAIN_TABLE => {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                table = Some(String::from_utf8_lossy(&v[..end]).into_owned());
            }
            NFTA_CHAIN_HOOK => {
                hook = attrs(v)
                    .iter()
                    .find(|(t, v)| *t == NFTA_HOOK_HOOKNUM && v.len() >= 4)
                    .map(|(_, v)| u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as u8);
            }
            _ => {}
        }
    }
    Some((table?, hook?))
}

/// Parse one datagram of the dump into `out`; true when the dump is done.
fn parse(mut b: &[u8], seq: u32, out: &mut Vec<Msg>) -> io::Result<bool> {
    while b.len() >= 16 {
        let len = u32_at(b, 0).unwrap_or(0) as usize;
        let ty = u16_at(b, 4).unwrap_or(0);
        let mseq = u32_at(b, 8).unwrap_or(0);
        if len < 16 || len > b.len() {
            return Err(io::Error::other("malformed netlink message"));
        }
        let payload = &b[16..len];
        if mseq == seq {
            match ty {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let err = u32_at(payload, 0).unwrap_or(0) as i32;
                    if err != 0 {
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                    return Ok(true);
                }
                _ if payload.len() >= 4 => out.push(Msg {
                    family: payload[0],
                    attrs: payload[4..].to_vec(),
                }),
                _ => {}
            }
        }
        let next = (len + 3) & !3;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn msg(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&2u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn request_layout() {
        let r = request(2, 1, 7);
        assert_eq!(r.len(), 28);
        assert_eq!(&r[4..6], &0x0c00u16.to_ne_bytes());
        assert_eq!(r[16], 2);
        assert_eq!(&r[24..28], &[0, 0, 0, 1]);
    }

    #[test]
    fn parses_entries_and_done() {
        let mut body = vec![2, 0, 0, 0];
        body.extend(nla(NFNLA_HOOK_PRIORITY, &(-200i32).to_be_bytes()));
        body.extend(nla(NFNLA_HOOK_FUNCTION_NAME, b"ipv4_conntrack_in\0"));
        let mut bpf = vec![2, 0, 0, 0];
        bpf.extend(nla(NFNLA_HOOK_PRIORITY, &(i32::MIN + 1).to_be_bytes()));
        bpf.extend(nla(
            NFNLA_HOOK_CHAIN_INFO | 0x8000,
            &nla(NFNLA_HOOK_INFO_TYPE, &NFNL_HOOK_TYPE_BPF.to_be_bytes()),
        ));
        let mut dgram = msg(0x0c00, 9, &body);
        dgram.extend(msg(0x0c00, 9, &bpf));
        let mut msgs = Vec::new();
        assert!(!parse(&dgram, 9, &mut msgs).expect("parse"));
        let out: Vec<HookEntry> = msgs.iter().map(hook_entry).collect();
        assert_eq!(
            out,
            vec![
                HookEntry {
                    priority: -200,
                    function: "ipv4_conntrack_in".into(),
                    bpf: false
                },
                HookEntry {
                    priority: i32::MIN + 1,
                    function: String::new(),
                    bpf: true
                }
            ]
        );
        assert!(parse(&msg(NLMSG_DONE, 9, &[0; 4]), 9, &mut msgs).expect("done"));
        let err = msg(NLMSG_ERROR, 9, &(-(libc::EPERM)).to_ne_bytes());
        assert!(parse(&err, 9, &mut msgs).is_err());
    }

    #[test]
    fn base_chains_give_their_hook() {
        // inet table "filter", chain with hook input (1) priority 0.
        let mut body = vec![NFPROTO_INET, 0, 0, 0];
        body.extend(nla(NFTA_CHAIN_TABLE, b"filter\0"));
        let mut hook = nla(NFTA_HOOK_HOOKNUM, &1u32.to_be_bytes());
        hook.extend(nla(2, &0i32.to_be_bytes()));
        body.extend(nla(NFTA_CHAIN_HOOK | 0x8000, &hook));
        let mut regular = vec![2, 0, 0, 0];
        regular.extend(nla(NFTA_CHAIN_TABLE, b"t\0"));
        let mut dgram = msg(0x0a03, 5, &body);
        dgram.extend(msg(0x0a03, 5, &regular));
        let mut msgs = Vec::new();
        parse(&dgram, 5, &mut msgs).expect("parse");
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].family, NFPROTO_INET);
        assert_eq!(chain_hook(&msgs[0]), Some(("filter".to_string(), 1)));
        assert_eq!(chain_hook(&msgs[1]), None, "a regular chain has no hook");
        assert_eq!(legacy_table_hooks("raw"), &[0, 3]);
    }

    #[test]
    fn truncated_input_does_not_panic() {
        let mut out = Vec::new();
        let _ = parse(&[1, 2, 3], 1, &mut out);
        let _ = parse(
            &[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            1,
            &mut out,
        );
        assert!(attrs(&[8, 0, 1, 0, 1]).is_empty());
    }
}
