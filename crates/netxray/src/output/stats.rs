//! `netxray stats`: a table per interval (interfaces, protocols, top flows
//! and sources), or a JSON snapshot.

use super::report;
use crate::model::stats::Report;
use std::io::{self, Write};

impl report::Report for Report {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        print_report(out, self)
    }
}

/// 1234567 -> "1.2M".
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.1}k", v / 1e3),
        v if v > 0.0 && v < 10.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

fn print_report(out: &mut dyn Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        "netns {}  interval {:.1} s",
        r.netns_name.clone().unwrap_or_else(|| r.netns.to_string()),
        r.interval_s
    )?;
    writeln!(
        out,
        "{:<12} {:<4} {:>8} {:>8}  {:>7} {:>7} {:>6} {:>6}  {:>7} {:>7} {:>6} {:>6}  {:>6} {:>6}",
        "IFACE",
        "DIR",
        "PKT/S",
        "BIT/S",
        "IPV4",
        "IPV6",
        "ARP",
        "OTHER",
        "TCP",
        "UDP",
        "ICMP",
        "OTHER",
        "SYN/S",
        "RST/S"
    )?;
    let rate = |n: u64| {
        si(if r.interval_s > 0.0 {
            n as f64 / r.interval_s
        } else {
            0.0
        })
    };
    for i in &r.interfaces {
        let l3 = |k: &str| rate(i.l3.get(k).map_or(0, |c| c.packets));
        let l4 = |k: &str| rate(i.l4.get(k).map_or(0, |c| c.packets));
        writeln!(
            out,
            "{:<12} {:<4} {:>8} {:>8}  {:>7} {:>7} {:>6} {:>6}  {:>7} {:>7} {:>6} {:>6}  {:>6} {:>6}",
            i.ifname,
            i.dir,
            si(i.pps),
            si(i.bps),
            l3("ipv4"),
            l3("ipv6"),
            l3("arp"),
            l3("other"),
            l4("tcp"),
            l4("udp"),
            l4("icmp"),
            l4("other"),
            rate(i.tcp_syn),
            rate(i.tcp_rst)
        )?;
    }
    if !r.flows.is_empty() {
        writeln!(out, "top flows")?;
        for f in &r.flows {
            let ports = matches!(f.proto.as_str(), "tcp" | "udp" | "sctp");
            let (s, d) = if ports {
                (
                    format!("{}.{}", f.saddr, f.sport),
                    format!("{}.{}", f.daddr, f.dport),
                )
            } else {
                (f.saddr.to_string(), f.daddr.to_string())
            };
            writeln!(
                out,
                "  {:<12} {:<4} {:<5} {:>22} > {:<22} {:>8} pkt/s {:>8} bit/s",
                f.ifname,
                f.dir,
                f.proto,
                s,
                d,
                si(f.pps),
                si(f.bps)
            )?;
        }
    }
    if !r.sources.is_empty() {
        writeln!(out, "top sources (received)")?;
        for s in &r.sources {
            writeln!(
                out,
                "  {:<39} {:>8} pkt/s {:>8} bit/s",
                s.saddr.to_string(),
                si(s.pps),
                si(s.bps)
            )?;
        }
    }
    let t = &r.flow_table;
    writeln!(
        out,
        "flows: {} of {} in the table, {} evicted{}\n",
        t.entries,
        t.capacity,
        t.evicted,
        if t.failed > 0 {
            format!(", {} not tracked", t.failed)
        } else {
            String::new()
        }
    )
}
