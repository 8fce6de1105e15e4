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

use crate::kernel::sys::netlink::codec::{NLM_F_DUMP, NLM_F_REQUEST};
use crate::kernel::sys::netlink::{Attrs, Message, NlSocket};
use std::io;

const NFNL_SUBSYS_HOOK: u16 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFPROTO_INET: u8 = 1;
const NFNL_MSG_HOOK_GET: u16 = 0;
const NFNLA_HOOK_HOOKNUM: u16 = 1;
const NFNLA_HOOK_PRIORITY: u16 = 2;
const NFNLA_HOOK_FUNCTION_NAME: u16 = 4;
const NFNLA_HOOK_CHAIN_INFO: u16 = 6;
const NFNLA_HOOK_INFO_TYPE: u16 = 2;
const NFNL_HOOK_TYPE_BPF: u32 = 2;

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
    sock: NlSocket,
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
        let sock = NlSocket::open(libc::NETLINK_NETFILTER)?;
        let legacy = [(2u8, "ip_tables_names"), (10, "ip6_tables_names")]
            .iter()
            .filter_map(|(pf, f)| {
                std::fs::File::open(format!("/proc/thread-self/net/{f}"))
                    .ok()
                    .map(|file| (*pf, file))
            })
            .collect();
        Ok(Self {
            sock,
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
        let seq = self.sock.next_seq();
        for m in self.dump(&nft_dump(NFT_MSG_GETCHAIN, seq), seq)? {
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
        let seq = self.sock.next_seq();
        Ok(self
            .dump(&request(pf, hooknum, seq), seq)?
            .iter()
            .map(hook_entry)
            .collect())
    }

    /// Send a dump request; the replies (nfgenmsg family, attributes).
    fn dump(&mut self, req: &[u8], seq: u32) -> io::Result<Vec<Msg>> {
        Ok(self
            .sock
            .dump(req, seq)?
            .iter()
            .filter_map(|m| {
                let (family, attrs) = m.as_msg().nfgen().ok()?;
                Some(Msg {
                    family,
                    attrs: attrs.to_vec(),
                })
            })
            .collect())
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
    let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
    Message::nfnetlink(ty, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, 0).finish()
}

/// What is registered at (pf, hooknum): NFNL_MSG_HOOK_GET.
fn request(pf: u8, hooknum: u8, seq: u32) -> Vec<u8> {
    let ty = (NFNL_SUBSYS_HOOK << 8) | NFNL_MSG_HOOK_GET;
    let mut m = Message::nfnetlink(ty, NLM_F_REQUEST | NLM_F_DUMP, seq, pf, 0);
    m.put_be32(NFNLA_HOOK_HOOKNUM, u32::from(hooknum));
    m.finish()
}

/// The attributes of one level, leniently: what parses before a bad one.
fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs::parse(b).unwrap_or_default()
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
    let a = attrs(&m.attrs);
    if let Ok(Some(p)) = a.be32(NFNLA_HOOK_PRIORITY) {
        h.priority = p as i32;
    }
    if let Some(v) = a.bytes(NFNLA_HOOK_FUNCTION_NAME) {
        let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
        h.function = String::from_utf8_lossy(&v[..end]).into_owned();
    }
    if let Some(info) = a.bytes(NFNLA_HOOK_CHAIN_INFO) {
        h.bpf = attrs(info).be32(NFNLA_HOOK_INFO_TYPE) == Ok(Some(NFNL_HOOK_TYPE_BPF));
    }
    h
}

/// A base chain's table and hook number (regular chains have no hook).
fn chain_hook(m: &Msg) -> Option<(String, u8)> {
    let a = attrs(&m.attrs);
    let table = a.str(NFTA_CHAIN_TABLE).ok().flatten()?.to_string();
    let hook = attrs(a.bytes(NFTA_CHAIN_HOOK)?)
        .be32(NFTA_HOOK_HOOKNUM)
        .ok()
        .flatten()?;
    Some((table, hook as u8))
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

    /// The replies of a datagram, as `HookQuery::dump` hands them on.
    fn replies(dgram: &[u8]) -> Vec<Msg> {
        crate::kernel::sys::netlink::messages(dgram)
            .expect("messages")
            .iter()
            .filter_map(|m| {
                let (family, attrs) = m.nfgen().ok()?;
                Some(Msg {
                    family,
                    attrs: attrs.to_vec(),
                })
            })
            .collect()
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
        let msgs = replies(&dgram);
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
        let msgs = replies(&dgram);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].family, NFPROTO_INET);
        assert_eq!(chain_hook(&msgs[0]), Some(("filter".to_string(), 1)));
        assert_eq!(chain_hook(&msgs[1]), None, "a regular chain has no hook");
        assert_eq!(legacy_table_hooks("raw"), &[0, 3]);
    }

    #[test]
    fn truncated_input_does_not_panic() {
        let entry = hook_entry(&Msg {
            family: 2,
            attrs: vec![8, 0, 2, 0, 1],
        });
        assert_eq!(entry.priority, 0);
        assert_eq!(attrs(&[8, 0, 1, 0, 1]).bytes(1), None);
    }
}
