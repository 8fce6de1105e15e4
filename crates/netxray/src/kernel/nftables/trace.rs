//! NFT_MSG_TRACE messages (group NFNLGRP_NFTRACE) decoded into
//! [`NftTrace`]: the attributes of include/uapi/linux/netfilter/nf_tables.h
//! `enum nft_trace_attributes`.

use super::ruleset::{NFNL_SUBSYS_NFTABLES, NFT_MSG_TRACE};
use crate::kernel::sys::netlink::{Attrs, DecodeError, NlMsg};
use crate::model::nft::{NftTrace, TraceKind, Verdict};

const NFTA_TRACE_TABLE: u16 = 1;
const NFTA_TRACE_CHAIN: u16 = 2;
const NFTA_TRACE_RULE_HANDLE: u16 = 3;
const NFTA_TRACE_TYPE: u16 = 4;
const NFTA_TRACE_VERDICT: u16 = 5;
const NFTA_TRACE_ID: u16 = 6;
const NFTA_TRACE_NETWORK_HEADER: u16 = 8;
const NFTA_TRACE_TRANSPORT_HEADER: u16 = 9;
const NFTA_TRACE_IIF: u16 = 10;
const NFTA_TRACE_OIF: u16 = 12;
const NFTA_TRACE_MARK: u16 = 14;
const NFTA_TRACE_NFPROTO: u16 = 15;
const NFTA_TRACE_POLICY: u16 = 16;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// The message type of a trace message.
pub const TRACE_MSG_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE;

/// A trace message; `None` for any other message.
pub fn decode(msg: &NlMsg<'_>) -> Result<Option<NftTrace>, DecodeError> {
    if msg.ty != TRACE_MSG_TYPE {
        return Ok(None);
    }
    let (family, attrs) = msg.nfgen()?;
    let a = Attrs::parse(attrs)?;
    let kind = a.be32(NFTA_TRACE_TYPE)?.map(TraceKind::from_raw);
    let verdict = match (kind, a.be32(NFTA_TRACE_POLICY)?) {
        (Some(TraceKind::Policy), Some(p)) => Some(Verdict::from_code(p as i32, None)),
        _ => match a.nested(NFTA_TRACE_VERDICT)? {
            Some(v) => v
                .be32(NFTA_VERDICT_CODE)?
                .map(|c| Verdict::from_code(c as i32, v.str(NFTA_VERDICT_CHAIN).ok().flatten())),
            None => None,
        },
    };
    Ok(Some(NftTrace {
        family,
        table: a.str(NFTA_TRACE_TABLE)?.unwrap_or_default().to_string(),
        chain: a.str(NFTA_TRACE_CHAIN)?.unwrap_or_default().to_string(),
        handle: a.be64(NFTA_TRACE_RULE_HANDLE)?,
        kind,
        verdict,
        id: a.be32(NFTA_TRACE_ID)?.unwrap_or(0),
        iif: a.be32(NFTA_TRACE_IIF)?,
        oif: a.be32(NFTA_TRACE_OIF)?,
        mark: a.be32(NFTA_TRACE_MARK)?,
        nfproto: a.be32(NFTA_TRACE_NFPROTO)?.map(|p| p as u8),
        network_header: a.bytes(NFTA_TRACE_NETWORK_HEADER).map(<[u8]>::to_vec),
        transport_header: a.bytes(NFTA_TRACE_TRANSPORT_HEADER).map(<[u8]>::to_vec),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::netlink::{messages, Message};
    use crate::model::nft::{family, NftEvent, TracedPacket};

    fn shown(t: &NftTrace) -> (String, String) {
        let e = NftEvent::new(t, &TracedPacket::from_headers(&[], None), 0, 0);
        (e.where_(), e.what())
    }

    fn hex(parts: &[&str]) -> Vec<u8> {
        let s: String = parts.concat();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Captured on kernel 6.18 (NFNLGRP_NFTRACE, `ip netns exec B python3`):
    /// a UDP datagram 198.18.0.1:40000 -> 198.18.0.2:5000 meeting netxray's
    /// prerouting rule, then `udp dport 5000 drop` (handle 2) in B's
    /// `inet filter input`.
    #[test]
    fn decodes_captured_kernel_messages() {
        let own = hex(&[
        "b8000000110a000000000000000000000100000008000f00000000020800040000000003080006009701bdfc0f000200",
        "707265726f7574696e670000120001006e6574787261795f32313730370000000c00030000000000000000020c000500",
        "08000100ffffffff08000a000000000206000b00000100001800080045000021df5040004011cf53c6120001c6120002",
        "110009009c401388000d8c4668656c6c6f000000120007007a892749145ae28d06564f1208000000",
        ]);
        let drop = hex(&[
        "ac000000110a000000000000000000000100000008000f00000000020800040000000003080006009701bdfc0a000200",
        "696e7075740000000b00010066696c74657200000c00030000000000000000020c000500080001000000000008000a00",
        "0000000206000b00000100001800080045000021df5040004011cf53c6120001c6120002110009009c401388000d8c46",
        "68656c6c6f000000120007007a892749145ae28d06564f1208000000",
        ]);
        let own = decode(&messages(&own).unwrap()[0]).unwrap().unwrap();
        assert_eq!(own.table, "netxray_21707");
        assert!(own.is_netxray());
        assert_eq!(own.kind, Some(TraceKind::Rule));
        assert_eq!(own.verdict, Some(Verdict::Continue));
        assert!(own.network_header.is_some());

        let msgs = messages(&drop).unwrap();
        assert_eq!(msgs.len(), 1);
        let t = decode(&msgs[0]).unwrap().unwrap();
        assert_eq!(
            shown(&t),
            (
                "inet filter input".into(),
                "rule handle 2 verdict drop".into()
            )
        );
        assert_eq!(t.id, own.id, "one packet, one trace id");
        assert_eq!(t.iif, Some(2));
        assert_eq!(t.nfproto, Some(family::IPV4));
        let p = TracedPacket::from_headers(
            t.network_header.as_deref().unwrap(),
            t.transport_header.as_deref(),
        );
        assert_eq!(
            p.packet.summary(),
            "IP 198.18.0.1.40000 > 198.18.0.2.5000: UDP, length 5"
        );
    }

    #[test]
    fn decodes_a_rule_verdict() {
        let mut m = Message::nfnetlink(TRACE_MSG_TYPE, 0, 0, family::INET, 0);
        m.put_str(NFTA_TRACE_TABLE, "filter")
            .put_str(NFTA_TRACE_CHAIN, "input")
            .put(NFTA_TRACE_RULE_HANDLE, &4u64.to_be_bytes())
            .put_be32(NFTA_TRACE_TYPE, 3)
            .nest(NFTA_TRACE_VERDICT)
            .put_be32(NFTA_VERDICT_CODE, 0)
            .end_nest()
            .put_be32(NFTA_TRACE_ID, 0xdead_beef)
            .put_be32(NFTA_TRACE_IIF, 2)
            .put_be32(NFTA_TRACE_NFPROTO, 2);
        let b = m.finish();
        let msgs = messages(&b).unwrap();
        let t = decode(&msgs[0]).unwrap().unwrap();
        assert_eq!(
            shown(&t),
            (
                "inet filter input".into(),
                "rule handle 4 verdict drop".into()
            )
        );
        assert_eq!(t.id, 0xdead_beef);
        assert_eq!(t.iif, Some(2));
        assert_eq!(t.oif, None);
        assert_eq!(t.nfproto, Some(2));
    }

    #[test]
    fn decodes_a_policy_and_a_jump() {
        let mut m = Message::nfnetlink(TRACE_MSG_TYPE, 0, 0, family::IPV4, 0);
        m.put_str(NFTA_TRACE_TABLE, "t")
            .put_str(NFTA_TRACE_CHAIN, "c")
            .put_be32(NFTA_TRACE_TYPE, 1)
            .put_be32(NFTA_TRACE_POLICY, 1);
        let b = m.finish();
        let t = decode(&messages(&b).unwrap()[0]).unwrap().unwrap();
        assert_eq!(shown(&t).1, "policy accept");

        let mut m = Message::nfnetlink(TRACE_MSG_TYPE, 0, 0, family::IPV4, 0);
        m.put_str(NFTA_TRACE_TABLE, "t")
            .put_str(NFTA_TRACE_CHAIN, "c")
            .put(NFTA_TRACE_RULE_HANDLE, &9u64.to_be_bytes())
            .put_be32(NFTA_TRACE_TYPE, 3)
            .nest(NFTA_TRACE_VERDICT)
            .put_be32(NFTA_VERDICT_CODE, -3i32 as u32)
            .put_str(NFTA_VERDICT_CHAIN, "web")
            .end_nest();
        let b = m.finish();
        let t = decode(&messages(&b).unwrap()[0]).unwrap().unwrap();
        assert_eq!(shown(&t).1, "rule handle 9 verdict jump web");
    }

    #[test]
    fn other_messages_and_garbage() {
        let b = Message::nfnetlink(0x0a00, 0, 0, 1, 0).finish();
        assert_eq!(decode(&messages(&b).unwrap()[0]).unwrap(), None);
        let mut b = Message::nfnetlink(TRACE_MSG_TYPE, 0, 0, 1, 0).finish();
        b.extend_from_slice(&[8, 0, 3, 0, 1, 2, 3, 4]); // a handle of 4 bytes
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        assert!(decode(&messages(&b).unwrap()[0]).is_err());
    }
}
