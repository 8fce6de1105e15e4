//! The rtnetlink tc messages of the legacy path, as bytes (pure, tested on
//! byte fixtures), and the few requests made with them on a NETLINK_ROUTE
//! socket: list, add and delete the clsact qdisc and cls_bpf filters.
//!
//! Layout (include/uapi/linux/rtnetlink.h, pkt_sched.h, pkt_cls.h):
//! `nlmsghdr`, then `tcmsg` {family u8, pad u8, pad u16, ifindex i32,
//! handle u32, parent u32, info u32} (host order), then attributes:
//! TCA_KIND ("clsact", "bpf") and TCA_OPTIONS (a nest; for cls_bpf the
//! program fd, its name and the direct-action flag). A filter's `info` is
//! `priority << 16 | protocol` with the protocol in network order.

use crate::kernel::sys::netlink::codec::{
    DecodeError, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use crate::kernel::sys::netlink::{Attrs, Message, NlMsg, NlSocket};
use std::io;

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
/// cls_bpf direct action: the program's return value is the verdict.
pub const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;

/// The clsact (and ingress) qdisc's parent, and its handle `ffff:`.
pub const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
pub const CLSACT_HANDLE: u32 = 0xFFFF_0000;
const TC_H_MIN_INGRESS: u32 = 0xFFF2;
const TC_H_MIN_EGRESS: u32 = 0xFFF3;
/// Every protocol (`protocol all`).
pub const ETH_P_ALL: u16 = 0x0003;

const TCMSG_LEN: usize = 20;

/// Which side of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The filter parent under clsact: `ffff:fff2` / `ffff:fff3`.
    pub fn parent(self) -> u32 {
        CLSACT_HANDLE
            | match self {
                Direction::Ingress => TC_H_MIN_INGRESS,
                Direction::Egress => TC_H_MIN_EGRESS,
            }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// `struct tcmsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcMsg {
    pub ifindex: i32,
    pub handle: u32,
    pub parent: u32,
    pub info: u32,
}

impl TcMsg {
    pub fn encode(&self) -> [u8; TCMSG_LEN] {
        let mut b = [0u8; TCMSG_LEN];
        // family AF_UNSPEC and padding stay 0.
        b[4..8].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[8..12].copy_from_slice(&self.handle.to_ne_bytes());
        b[12..16].copy_from_slice(&self.parent.to_ne_bytes());
        b[16..20].copy_from_slice(&self.info.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let word = |i: usize| -> Result<[u8; 4], DecodeError> {
            b.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or(DecodeError::Truncated("tcmsg"))
        };
        Ok(Self {
            ifindex: i32::from_ne_bytes(word(4)?),
            handle: u32::from_ne_bytes(word(8)?),
            parent: u32::from_ne_bytes(word(12)?),
            info: u32::from_ne_bytes(word(16)?),
        })
    }
}

/// A filter's `tcm_info`: priority and protocol (host order in, network
/// order in the low half).
pub fn filter_info(prio: u16, protocol: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(protocol.to_be())
}

/// A qdisc as RTM_GETQDISC lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdiscInfo {
    pub ifindex: u32,
    pub parent: u32,
    pub handle: u32,
    pub kind: String,
}

/// A filter (or, with handle 0, a filter chain's head: one per priority
/// and protocol) as RTM_GETTFILTER lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterInfo {
    pub prio: u16,
    /// Host order.
    pub protocol: u16,
    pub handle: u32,
    pub kind: String,
    /// cls_bpf: the program's name (TCA_BPF_NAME), its id, direct action.
    pub name: Option<String>,
    pub prog_id: Option<u32>,
    pub direct_action: bool,
}

fn tc_request(ty: u16, flags: u16, seq: u32, tc: TcMsg) -> Message {
    Message::with_header(ty, NLM_F_REQUEST | flags, seq, &tc.encode())
}

/// `tc qdisc add dev IFINDEX clsact`, failing if any ingress/clsact qdisc
/// is there (EEXIST).
pub fn new_clsact(ifindex: u32, seq: u32) -> Vec<u8> {
    let tc = TcMsg {
        ifindex: ifindex as i32,
        handle: CLSACT_HANDLE,
        parent: TC_H_CLSACT,
        info: 0,
    };
    let mut m = tc_request(RTM_NEWQDISC, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, tc);
    m.put_str(TCA_KIND, "clsact");
    m.finish()
}

/// `tc qdisc del dev IFINDEX clsact`.
pub fn del_clsact(ifindex: u32, seq: u32) -> Vec<u8> {
    let tc = TcMsg {
        ifindex: ifindex as i32,
        handle: CLSACT_HANDLE,
        parent: TC_H_CLSACT,
        info: 0,
    };
    let mut m = tc_request(RTM_DELQDISC, NLM_F_ACK, seq, tc);
    m.put_str(TCA_KIND, "clsact");
    m.finish()
}

/// Every qdisc of the namespace (a dump).
pub fn get_qdiscs(seq: u32) -> Vec<u8> {
    tc_request(RTM_GETQDISC, NLM_F_DUMP, seq, TcMsg::default()).finish()
}

/// What a new cls_bpf filter is.
#[derive(Debug, Clone)]
pub struct BpfFilter<'a> {
    pub ifindex: u32,
    pub dir: Direction,
    pub prio: u16,
    pub handle: u32,
    pub prog_fd: i32,
    pub name: &'a str,
}

/// `tc filter add dev IFINDEX DIR protocol all pref PRIO handle HANDLE bpf
/// direct-action fd FD name NAME`, failing if that handle exists (EEXIST).
pub fn new_bpf_filter(f: &BpfFilter<'_>, seq: u32) -> Vec<u8> {
    let tc = TcMsg {
        ifindex: f.ifindex as i32,
        handle: f.handle,
        parent: f.dir.parent(),
        info: filter_info(f.prio, ETH_P_ALL),
    };
    let mut m = tc_request(
        RTM_NEWTFILTER,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        tc,
    );
    m.put_str(TCA_KIND, "bpf")
        .nest(TCA_OPTIONS)
        .put_u32(TCA_BPF_FD, f.prog_fd as u32)
        .put_str(TCA_BPF_NAME, f.name)
        .put_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT)
        .end_nest();
    m.finish()
}

/// Delete exactly one filter: its priority, protocol, handle and kind. The
/// handle must not be 0 (that deletes the whole priority).
pub fn del_filter(ifindex: u32, dir: Direction, f: &FilterInfo, seq: u32) -> Vec<u8> {
    let tc = TcMsg {
        ifindex: ifindex as i32,
        handle: f.handle,
        parent: dir.parent(),
        info: filter_info(f.prio, f.protocol),
    };
    let mut m = tc_request(RTM_DELTFILTER, NLM_F_ACK, seq, tc);
    m.put_str(TCA_KIND, &f.kind);
    m.finish()
}

/// The filters of one side of an interface (a dump).
pub fn get_filters(ifindex: u32, dir: Direction, seq: u32) -> Vec<u8> {
    let tc = TcMsg {
        ifindex: ifindex as i32,
        handle: 0,
        parent: dir.parent(),
        info: 0,
    };
    tc_request(RTM_GETTFILTER, NLM_F_DUMP, seq, tc).finish()
}

pub fn parse_qdisc(msg: &NlMsg<'_>) -> Result<Option<QdiscInfo>, DecodeError> {
    if msg.ty != RTM_NEWQDISC {
        return Ok(None);
    }
    let (hdr, attrs) = msg.split_header(TCMSG_LEN)?;
    let tc = TcMsg::decode(hdr)?;
    let a = Attrs::parse(attrs)?;
    Ok(Some(QdiscInfo {
        ifindex: tc.ifindex as u32,
        parent: tc.parent,
        handle: tc.handle,
        kind: a.str(TCA_KIND)?.unwrap_or_default().to_string(),
    }))
}

pub fn parse_filter(msg: &NlMsg<'_>) -> Result<Option<FilterInfo>, DecodeError> {
    if msg.ty != RTM_NEWTFILTER {
        return Ok(None);
    }
    let (hdr, attrs) = msg.split_header(TCMSG_LEN)?;
    let tc = TcMsg::decode(hdr)?;
    let a = Attrs::parse(attrs)?;
    let kind = a.str(TCA_KIND)?.unwrap_or_default().to_string();
    let mut f = FilterInfo {
        prio: (tc.info >> 16) as u16,
        protocol: u16::from_be(tc.info as u16),
        handle: tc.handle,
        kind,
        name: None,
        prog_id: None,
        direct_action: false,
    };
    if f.kind == "bpf" {
        if let Some(o) = a.nested(TCA_OPTIONS)? {
            f.name = o.str(TCA_BPF_NAME)?.map(str::to_string);
            f.prog_id = o.u32(TCA_BPF_ID)?;
            f.direct_action = o.u32(TCA_BPF_FLAGS)?.unwrap_or(0) & TCA_BPF_FLAG_ACT_DIRECT != 0;
        }
    }
    Ok(Some(f))
}

fn bad(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The ingress/clsact qdisc of `ifindex` (parent `ffff:fff1`), if any.
pub fn ingress_qdisc(sock: &NlSocket, ifindex: u32) -> io::Result<Option<QdiscInfo>> {
    Ok(qdiscs(sock)?
        .into_iter()
        .find(|q| q.ifindex == ifindex && q.parent == TC_H_CLSACT))
}

/// Every qdisc of the socket's namespace.
pub fn qdiscs(sock: &NlSocket) -> io::Result<Vec<QdiscInfo>> {
    let seq = sock.next_seq();
    let mut out = Vec::new();
    for m in sock.dump(&get_qdiscs(seq), seq)? {
        if let Some(q) = parse_qdisc(&m.as_msg()).map_err(bad)? {
            out.push(q);
        }
    }
    Ok(out)
}

/// The filters (not the chain heads) on one side of an interface.
pub fn filters(sock: &NlSocket, ifindex: u32, dir: Direction) -> io::Result<Vec<FilterInfo>> {
    let seq = sock.next_seq();
    let mut out = Vec::new();
    for m in sock.dump(&get_filters(ifindex, dir, seq), seq)? {
        if let Some(f) = parse_filter(&m.as_msg()).map_err(bad)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Send a request built with `seq` and wait for its acknowledgement.
pub fn ack(sock: &NlSocket, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
    let seq = sock.next_seq();
    sock.request(&build(seq), seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::netlink::messages;

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_ne_bytes([b[i], b[i + 1]])
    }
    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"))
    }

    #[test]
    fn a_cls_bpf_filter_request_is_laid_out_as_tc_sends_it() {
        let f = BpfFilter {
            ifindex: 7,
            dir: Direction::Egress,
            prio: 1,
            handle: 4242,
            prog_fd: 9,
            name: "netxray:4242",
        };
        let b = new_bpf_filter(&f, 3);
        assert_eq!(u32_at(&b, 0) as usize, b.len());
        assert_eq!(u16_at(&b, 4), RTM_NEWTFILTER);
        assert_eq!(
            u16_at(&b, 6),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(u32_at(&b, 8), 3);
        // tcmsg: family 0, ifindex, handle, parent ffff:fff3, info.
        assert_eq!(&b[16..20], &[0, 0, 0, 0]);
        assert_eq!(u32_at(&b, 20), 7);
        assert_eq!(u32_at(&b, 24), 4242);
        assert_eq!(u32_at(&b, 28), 0xFFFF_FFF3);
        // pref 1, protocol all (0x0003 in network order).
        assert_eq!(u32_at(&b, 32), (1 << 16) | u32::from(0x0003u16.to_be()));
        #[cfg(target_endian = "little")]
        assert_eq!(&b[32..36], &[0x00, 0x03, 0x01, 0x00]);
        // TCA_KIND "bpf\0".
        assert_eq!(&b[36..44], &[8, 0, 1, 0, b'b', b'p', b'f', 0]);
        // TCA_OPTIONS, nested: fd, name, flags.
        assert_eq!(u16_at(&b, 46), TCA_OPTIONS | 0x8000);
        assert_eq!(u16_at(&b, 44) as usize, b.len() - 44);
        let opts = Attrs::parse(&b[48..]).expect("options");
        assert_eq!(opts.u32(TCA_BPF_FD), Ok(Some(9)));
        assert_eq!(opts.str(TCA_BPF_NAME), Ok(Some("netxray:4242")));
        assert_eq!(opts.u32(TCA_BPF_FLAGS), Ok(Some(TCA_BPF_FLAG_ACT_DIRECT)));
    }

    #[test]
    fn qdisc_requests_name_clsact_at_ffff() {
        let b = new_clsact(3, 1);
        assert_eq!(u16_at(&b, 4), RTM_NEWQDISC);
        assert_eq!(u32_at(&b, 20), 3);
        assert_eq!(u32_at(&b, 24), 0xFFFF_0000);
        assert_eq!(u32_at(&b, 28), 0xFFFF_FFF1);
        assert_eq!(
            &b[36..48],
            &[11, 0, 1, 0, b'c', b'l', b's', b'a', b'c', b't', 0, 0]
        );
        let d = del_clsact(3, 2);
        assert_eq!(u16_at(&d, 4), RTM_DELQDISC);
        assert_eq!(u16_at(&d, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(&d[20..36], &b[20..36]);
        let g = get_qdiscs(5);
        assert_eq!(g.len(), 36);
        assert_eq!(u16_at(&g, 6), NLM_F_REQUEST | NLM_F_DUMP);
    }

    #[test]
    fn a_deletion_names_exactly_one_filter() {
        let f = FilterInfo {
            prio: 49152,
            protocol: 0x0800,
            handle: 0x10,
            kind: "bpf".into(),
            name: None,
            prog_id: None,
            direct_action: true,
        };
        let b = del_filter(2, Direction::Ingress, &f, 9);
        assert_eq!(u16_at(&b, 4), RTM_DELTFILTER);
        let tc = TcMsg::decode(&b[16..36]).expect("tcmsg");
        assert_eq!(
            tc,
            TcMsg {
                ifindex: 2,
                handle: 0x10,
                parent: 0xFFFF_FFF2,
                info: filter_info(49152, 0x0800),
            }
        );
        assert_eq!(
            Attrs::parse(&b[36..]).expect("attrs").str(TCA_KIND),
            Ok(Some("bpf"))
        );
    }

    #[test]
    fn dumped_filters_and_qdiscs_decode() {
        // A filter as the kernel dumps it (the request encoder lays out the
        // same bytes; the kernel adds the program id).
        let tc = TcMsg {
            ifindex: 4,
            handle: 77,
            parent: 0xFFFF_FFF2,
            info: filter_info(3, ETH_P_ALL),
        };
        let mut m = Message::with_header(RTM_NEWTFILTER, 0, 1, &tc.encode());
        m.put_str(TCA_KIND, "bpf")
            .nest(TCA_OPTIONS)
            .put_str(TCA_BPF_NAME, "netxray:77:nx_tc_ingress")
            .put_u32(TCA_BPF_ID, 1234)
            .put_u32(TCA_BPF_FLAGS, 1)
            .end_nest();
        let head = Message::with_header(RTM_NEWTFILTER, 0, 1, &TcMsg { handle: 0, ..tc }.encode());
        let mut q = Message::with_header(
            RTM_NEWQDISC,
            0,
            1,
            &TcMsg {
                ifindex: 4,
                handle: CLSACT_HANDLE,
                parent: TC_H_CLSACT,
                info: 1,
            }
            .encode(),
        );
        q.put_str(TCA_KIND, "clsact");
        let mut dgram = m.finish();
        dgram.extend(head.finish());
        dgram.extend(q.finish());
        let msgs = messages(&dgram).expect("messages");
        let f = parse_filter(&msgs[0]).expect("decodes").expect("a filter");
        assert_eq!(
            f,
            FilterInfo {
                prio: 3,
                protocol: ETH_P_ALL,
                handle: 77,
                kind: "bpf".into(),
                name: Some("netxray:77:nx_tc_ingress".into()),
                prog_id: Some(1234),
                direct_action: true,
            }
        );
        let h = parse_filter(&msgs[1]).expect("decodes").expect("a head");
        assert_eq!((h.handle, h.name, h.prio), (0, None, 3));
        assert_eq!(parse_filter(&msgs[2]), Ok(None));
        let qd = parse_qdisc(&msgs[2]).expect("decodes").expect("a qdisc");
        assert_eq!(
            qd,
            QdiscInfo {
                ifindex: 4,
                parent: TC_H_CLSACT,
                handle: CLSACT_HANDLE,
                kind: "clsact".into(),
            }
        );
        // Truncated: an error, not a panic.
        let short = NlMsg {
            ty: RTM_NEWTFILTER,
            flags: 0,
            seq: 0,
            pid: 0,
            payload: &[0; 8],
        };
        assert!(parse_filter(&short).is_err());
    }
}
