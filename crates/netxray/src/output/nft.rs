//! nftables trace lines (`--nft-trace`): in the trace table's columns, the
//! hook being `nft:FAMILY TABLE CHAIN`; in JSON, one object with
//! `"kind": "nft"` (fields in docs/json.md).

use super::clock;
use crate::model::nft::{NftEvent, RuleRow};
use std::io::{self, Write};

/// `TIME NETNS IFACE nft:inet filter input  rule handle 4 verdict drop: PACKET`
pub fn write_text<W: Write>(out: &mut W, ev: &NftEvent) -> io::Result<()> {
    let netns = match &ev.netns_name {
        Some(n) => n.to_string(),
        None => ev.netns.to_string(),
    };
    let iface = ev
        .iifname
        .as_deref()
        .or(ev.oifname.as_deref())
        .unwrap_or("-");
    writeln!(
        out,
        "{:<15} {:<14} {:<10} {:<32} {}: {}",
        clock(ev.ts_ns),
        netns,
        iface,
        format!("nft:{}", ev.where_()),
        ev.what(),
        ev.summary
    )
}

pub fn write_json(out: &mut Vec<u8>, ev: &NftEvent) {
    // Serialising plain fields into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, ev);
    out.push(b'\n');
}

/// The rules table under the drops table.
pub fn print_rules(out: &mut dyn Write, rows: &[RuleRow], interval: f64) -> io::Result<()> {
    writeln!(
        out,
        "{:>8} {:>9}  {:<40} {:<14} SAMPLE",
        format!("/{interval:.0}s"),
        "TOTAL",
        "NFT RULE",
        "NETNS"
    )?;
    for r in rows {
        let rule = match r.handle {
            Some(h) => format!("{} {} {} handle {h}", r.family, r.table, r.chain),
            None => format!("{} {} {} policy", r.family, r.table, r.chain),
        };
        let ns = r
            .netns_name
            .as_ref()
            .map_or_else(|| r.netns.to_string(), |n| n.to_string());
        writeln!(
            out,
            "{:>8} {:>9}  {:<40} {:<14} {}",
            r.count,
            r.total,
            format!("{rule} ({})", r.verdict),
            ns,
            r.sample
        )?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> NftEvent {
        NftEvent {
            ts_ns: 3_723_000_456_789,
            kind: "nft",
            netns: 4026532455,
            netns_name: Some("nxb".into()),
            family: "inet",
            table: "filter".into(),
            chain: "input".into(),
            handle: Some(4),
            trace_type: "rule",
            verdict: Some("drop".into()),
            iifname: Some("vb".into()),
            summary: "IP 198.18.0.1.1234 > 198.18.0.2.5000: UDP, length 5".into(),
            ..Default::default()
        }
    }

    #[test]
    fn text_names_table_chain_handle_and_verdict() {
        let mut out = Vec::new();
        write_text(&mut out, &ev()).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("01:02:03.000456 nxb            vb         nft:inet filter input"),
            "{line}"
        );
        assert!(
            line.contains("rule handle 4 verdict drop: IP 198.18.0.1.1234 > 198.18.0.2.5000"),
            "{line}"
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut out = Vec::new();
        write_json(&mut out, &ev());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for f in [
            "ts_ns",
            "kind",
            "netns",
            "netns_name",
            "family",
            "table",
            "chain",
            "handle",
            "type",
            "verdict",
            "trace_id",
            "iif",
            "iifname",
            "oif",
            "oifname",
            "mark",
            "l3",
            "proto",
            "saddr",
            "daddr",
            "sport",
            "dport",
            "summary",
        ] {
            assert!(v.get(f).is_some(), "missing field {f}: {v}");
        }
        assert_eq!(v["kind"], "nft");
        assert_eq!(v["handle"], 4);
        assert_eq!(v["verdict"], "drop");
    }
}
