//! The requests netxray sends to nf_tables: the tracing tables (created in
//! one batch, owned by the control socket), and the table list (a dump).

use super::NftError;
use crate::kernel::sys::netlink::codec::{
    messages, Attrs, DecodeError, Message, NlMsg, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_APPEND,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use crate::kernel::sys::netlink::NlSocket;
use crate::model::nft::family;
use std::io;

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_TRACE: u16 = 17;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_OWNER: u16 = 7;
const NFT_TABLE_F_OWNER: u32 = 0x2;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_META_SREG: u16 = 3;
const NFT_META_NFTRACE: u32 = 12;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_REG_1: u32 = 1;

/// Hook numbers (the same for inet and bridge families).
const HOOK_PREROUTING: u32 = 0;
const HOOK_OUTPUT: u32 = 3;

/// Name prefix of every table netxray makes (`netxray_<pid>`).
pub const TABLE_PREFIX: &str = "netxray_";

/// Priority of the tracing chains: before everything a ruleset can hold
/// (raw is -300, conntrack -200, defrag -400), so that every rule the packet
/// meets later is traced. INT_MIN itself is left free.
pub const TRACE_PRIORITY: i32 = i32::MIN + 1;

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// Which tables to make: (family, chains (name, hook)).
pub const TRACE_TABLES: &[(u8, &[(&str, u32)])] = &[
    (
        family::INET,
        &[("prerouting", HOOK_PREROUTING), ("output", HOOK_OUTPUT)],
    ),
    (
        family::BRIDGE,
        &[("prerouting", HOOK_PREROUTING), ("output", HOOK_OUTPUT)],
    ),
];

/// The expressions of the marking rule: `[meta l4proto P] meta nftrace set 1`.
fn marking_rule(m: &mut Message, proto: Option<u8>) {
    m.nest(NFTA_RULE_EXPRESSIONS);
    if let Some(p) = proto {
        // meta load l4proto => reg 1; cmp eq reg 1 P
        m.nest(NFTA_LIST_ELEM)
            .put_str(NFTA_EXPR_NAME, "meta")
            .nest(NFTA_EXPR_DATA)
            .put_be32(NFTA_META_DREG, NFT_REG_1)
            .put_be32(NFTA_META_KEY, NFT_META_L4PROTO)
            .end_nest()
            .end_nest()
            .nest(NFTA_LIST_ELEM)
            .put_str(NFTA_EXPR_NAME, "cmp")
            .nest(NFTA_EXPR_DATA)
            .put_be32(NFTA_CMP_SREG, NFT_REG_1)
            .put_be32(NFTA_CMP_OP, NFT_CMP_EQ)
            .nest(NFTA_CMP_DATA)
            .put(NFTA_DATA_VALUE, &[p])
            .end_nest()
            .end_nest()
            .end_nest();
    }
    // immediate reg 1 <- 1; meta nftrace set reg 1
    m.nest(NFTA_LIST_ELEM)
        .put_str(NFTA_EXPR_NAME, "immediate")
        .nest(NFTA_EXPR_DATA)
        .put_be32(NFTA_IMMEDIATE_DREG, NFT_REG_1)
        .nest(NFTA_IMMEDIATE_DATA)
        .put(NFTA_DATA_VALUE, &[1])
        .end_nest()
        .end_nest()
        .end_nest()
        .nest(NFTA_LIST_ELEM)
        .put_str(NFTA_EXPR_NAME, "meta")
        .nest(NFTA_EXPR_DATA)
        .put_be32(NFTA_META_KEY, NFT_META_NFTRACE)
        .put_be32(NFTA_META_SREG, NFT_REG_1)
        .end_nest()
        .end_nest()
        .end_nest();
}

/// `table FAMILY NAME { flags owner; chain C { type filter hook H priority P;
/// [meta l4proto P] meta nftrace set 1 ... } ... }` as one batch: one rule
/// per protocol in `protos`, or one rule marking everything when it is
/// empty. Without `owner` (kernels before 5.12 refuse the flag) the table
/// outlives the socket and must be deleted ([`delete`]). Returns the bytes
/// and the sequence numbers of its requests.
pub fn trace_table_batch(
    fam: u8,
    table: &str,
    chains: &[(&str, u32)],
    protos: &[u8],
    seq0: u32,
    owner: bool,
) -> (Vec<u8>, Vec<u32>) {
    let mut seq = seq0;
    let mut next = || {
        seq = seq.wrapping_add(1);
        seq
    };
    let res = NFNL_SUBSYS_NFTABLES;
    let mut out = Message::nfnetlink(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, next(), 0, res).finish();
    let mut seqs = Vec::new();
    let create = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;

    let s = next();
    seqs.push(s);
    let mut m = Message::nfnetlink(nft_type(NFT_MSG_NEWTABLE), create | NLM_F_EXCL, s, fam, 0);
    m.put_str(NFTA_TABLE_NAME, table);
    if owner {
        m.put_be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
    }
    out.extend(m.finish());

    for (chain, hook) in chains {
        let s = next();
        seqs.push(s);
        let mut m = Message::nfnetlink(nft_type(NFT_MSG_NEWCHAIN), create, s, fam, 0);
        m.put_str(NFTA_CHAIN_TABLE, table)
            .put_str(NFTA_CHAIN_NAME, chain)
            .nest(NFTA_CHAIN_HOOK)
            .put_be32(NFTA_HOOK_HOOKNUM, *hook)
            .put_be32(NFTA_HOOK_PRIORITY, TRACE_PRIORITY as u32)
            .end_nest()
            .put_str(NFTA_CHAIN_TYPE, "filter");
        out.extend(m.finish());

        let marks: Vec<Option<u8>> = if protos.is_empty() {
            vec![None]
        } else {
            protos.iter().copied().map(Some).collect()
        };
        for proto in marks {
            let s = next();
            seqs.push(s);
            let flags = create | NLM_F_APPEND;
            let mut m = Message::nfnetlink(nft_type(NFT_MSG_NEWRULE), flags, s, fam, 0);
            m.put_str(NFTA_RULE_TABLE, table)
                .put_str(NFTA_RULE_CHAIN, chain);
            marking_rule(&mut m, proto);
            out.extend(m.finish());
        }
    }
    out.extend(Message::nfnetlink(NFNL_MSG_BATCH_END, NLM_F_REQUEST, next(), 0, res).finish());
    (out, seqs)
}

fn errno_of(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

/// Send a batch and wait for the acknowledgements of `seqs` (the kernel
/// answers every request that asked for one, and the batch header when
/// the whole batch is refused). The socket must have a receive timeout.
fn talk(sock: &NlSocket, batch: &[u8], seqs: &[u32], what: &str) -> Result<(), NftError> {
    sock.send(batch).map_err(|e| NftError::from_io(what, e))?;
    let first_seq = seqs.first().map_or(0, |s| s.wrapping_sub(1));
    let mut pending: Vec<u32> = seqs.to_vec();
    let mut first_err: Option<io::Error> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !pending.is_empty() {
        let n = sock.recv(&mut buf, false).map_err(|e| {
            NftError::from_io(format!("{what}: waiting for the kernel's answer"), e)
        })?;
        for msg in messages(&buf[..n]).map_err(|e| NftError::Decode(e.to_string()))? {
            if msg.ty != NLMSG_ERROR {
                continue;
            }
            let code = msg
                .error_code()
                .map_err(|e| NftError::Decode(e.to_string()))?;
            if code != 0 && first_err.is_none() {
                first_err = Some(errno_of(code));
            }
            if msg.seq == first_seq && code != 0 {
                // The batch itself was refused (no nf_tables, no privilege).
                pending.clear();
            }
            pending.retain(|s| *s != msg.seq);
        }
    }
    match first_err {
        None => Ok(()),
        Some(e) => Err(NftError::from_io(what, e)),
    }
}

/// Create the tracing table of family `fam` called `table`, owned by
/// `sock` when `owner`, marking the L4 protocols `protos` (everything when
/// empty).
pub fn install(
    sock: &NlSocket,
    fam: u8,
    table: &str,
    chains: &[(&str, u32)],
    protos: &[u8],
    owner: bool,
) -> Result<(), NftError> {
    // Sequence numbers only need to differ between the batches of a socket.
    let seq0 = u32::from(fam) * 1000 + if owner { 0 } else { 500 };
    let (batch, seqs) = trace_table_batch(fam, table, chains, protos, seq0, owner);
    talk(
        sock,
        &batch,
        &seqs,
        &format!("creating nftables table {} {table}", family::name(fam)),
    )
}

/// Delete table `table` of family `fam` (with its chains and rules).
pub fn delete(sock: &NlSocket, fam: u8, table: &str, seq0: u32) -> Result<(), NftError> {
    let res = NFNL_SUBSYS_NFTABLES;
    let mut out = Message::nfnetlink(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq0, 0, res).finish();
    let s = seq0.wrapping_add(1);
    let mut m = Message::nfnetlink(
        nft_type(NFT_MSG_DELTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        s,
        fam,
        0,
    );
    m.put_str(NFTA_TABLE_NAME, table);
    out.extend(m.finish());
    out.extend(
        Message::nfnetlink(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq0.wrapping_add(2),
            0,
            res,
        )
        .finish(),
    );
    talk(
        sock,
        &out,
        &[s],
        &format!("deleting nftables table {} {table}", family::name(fam)),
    )
}

/// A table as NFT_MSG_GETTABLE lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub family: u8,
    pub name: String,
    pub flags: u32,
    /// The netlink port id of the owning socket (owner tables only).
    pub owner: Option<u32>,
}

/// Every table of the socket's namespace.
pub fn list_tables(sock: &NlSocket) -> Result<Vec<TableInfo>, NftError> {
    let seq = 1;
    let req = Message::nfnetlink(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family::UNSPEC,
        0,
    )
    .finish();
    let what = "listing nftables tables";
    sock.send(&req).map_err(|e| NftError::from_io(what, e))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock
            .recv(&mut buf, false)
            .map_err(|e| NftError::from_io(what, e))?;
        for msg in messages(&buf[..n]).map_err(|e| NftError::Decode(e.to_string()))? {
            match msg.ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = msg
                        .error_code()
                        .map_err(|e| NftError::Decode(e.to_string()))?;
                    if code != 0 {
                        return Err(NftError::from_io(what, errno_of(code)));
                    }
                }
                t if t == nft_type(NFT_MSG_NEWTABLE) => {
                    out.push(parse_table(&msg).map_err(|e| NftError::Decode(e.to_string()))?);
                }
                _ => {}
            }
        }
    }
}

fn parse_table(msg: &NlMsg<'_>) -> Result<TableInfo, DecodeError> {
    let (fam, attrs) = msg.nfgen()?;
    let a = Attrs::parse(attrs)?;
    Ok(TableInfo {
        family: fam,
        name: a.str(NFTA_TABLE_NAME)?.unwrap_or_default().to_string(),
        flags: a.be32(NFTA_TABLE_FLAGS)?.unwrap_or(0),
        owner: a.be32(NFTA_TABLE_OWNER)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_begin_table_chains_rules_end() {
        let (b, seqs) =
            trace_table_batch(family::INET, "netxray_1", TRACE_TABLES[0].1, &[], 100, true);
        let msgs = messages(&b).unwrap();
        let types: Vec<u16> = msgs.iter().map(|m| m.ty).collect();
        assert_eq!(
            types,
            [0x10, 0x0a00, 0x0a03, 0x0a06, 0x0a03, 0x0a06, 0x11],
            "{types:x?}"
        );
        assert_eq!(seqs, [102, 103, 104, 105, 106]);
        // The batch header names the nf_tables subsystem (res_id, big endian).
        assert_eq!(msgs[0].payload, &[0, 0, 0, 10]);
        let (fam, attrs) = msgs[1].nfgen().unwrap();
        assert_eq!(fam, family::INET);
        let t = Attrs::parse(attrs).unwrap();
        assert_eq!(t.str(NFTA_TABLE_NAME).unwrap(), Some("netxray_1"));
        assert_eq!(t.be32(NFTA_TABLE_FLAGS).unwrap(), Some(NFT_TABLE_F_OWNER));
        let c = Attrs::parse(msgs[2].nfgen().unwrap().1).unwrap();
        let hook = c.nested(NFTA_CHAIN_HOOK).unwrap().unwrap();
        assert_eq!(hook.be32(NFTA_HOOK_HOOKNUM).unwrap(), Some(0));
        assert_eq!(
            hook.be32(NFTA_HOOK_PRIORITY).unwrap().map(|p| p as i32),
            Some(TRACE_PRIORITY)
        );
        let r = Attrs::parse(msgs[3].nfgen().unwrap().1).unwrap();
        let exprs = r.bytes(NFTA_RULE_EXPRESSIONS).unwrap();
        // Two list elements: "immediate" then "meta".
        let text = String::from_utf8_lossy(exprs);
        assert!(text.find("immediate").unwrap() < text.find("meta").unwrap());
        assert!(msgs[3].flags & NLM_F_APPEND != 0);
    }

    #[test]
    fn without_owner_the_table_has_no_flags() {
        let (b, _) = trace_table_batch(family::INET, "netxray_1", TRACE_TABLES[0].1, &[], 0, false);
        let msgs = messages(&b).unwrap();
        let t = Attrs::parse(msgs[1].nfgen().unwrap().1).unwrap();
        assert_eq!(t.str(NFTA_TABLE_NAME).unwrap(), Some("netxray_1"));
        assert_eq!(t.be32(NFTA_TABLE_FLAGS).unwrap(), None);
    }

    #[test]
    fn one_marking_rule_per_protocol() {
        let (b, _) = trace_table_batch(
            family::INET,
            "netxray_1",
            TRACE_TABLES[0].1,
            &[6, 17],
            0,
            true,
        );
        let msgs = messages(&b).unwrap();
        let rules: Vec<_> = msgs.iter().filter(|m| m.ty == 0x0a06).collect();
        assert_eq!(rules.len(), 4, "2 chains x 2 protocols");
        let r = Attrs::parse(rules[1].nfgen().unwrap().1).unwrap();
        let exprs = r.bytes(NFTA_RULE_EXPRESSIONS).unwrap();
        let text = String::from_utf8_lossy(exprs);
        assert!(text.find("cmp").unwrap() < text.find("immediate").unwrap());
        // The compared value: 17 (udp) in a one-byte NFTA_DATA_VALUE.
        assert!(exprs.windows(5).any(|w| w == [5, 0, 1, 0, 17]), "{exprs:?}");
    }

    #[test]
    fn parses_a_listed_table() {
        let mut m = Message::nfnetlink(nft_type(NFT_MSG_NEWTABLE), 0, 1, family::INET, 0);
        m.put_str(NFTA_TABLE_NAME, "netxray_42")
            .put_be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER)
            .put_be32(NFTA_TABLE_OWNER, 77);
        let b = m.finish();
        let msgs = messages(&b).unwrap();
        let t = parse_table(&msgs[0]).unwrap();
        assert_eq!(
            t,
            TableInfo {
                family: family::INET,
                name: "netxray_42".into(),
                flags: 2,
                owner: Some(77)
            }
        );
    }
}
