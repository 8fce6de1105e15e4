//! `netxray drops`: a table per interval (reason, place, namespace,
//! interface, the latest packet, what to check), or a JSON summary.

use super::nft::print_rules;
use super::report::Report;
use crate::model::nft::RuleRow;
use serde::Serialize;
use std::io::{self, Write};

/// One row of a table: a (reason, location, namespace, interface) and its
/// drops in the interval and since the start.
#[derive(Debug, Serialize)]
pub struct Row {
    pub reason: String,
    pub count: u64,
    pub total: u64,
    pub bytes: u64,
    pub netns: u32,
    /// With `netns`, the namespace's identity (null before Linux 5.12).
    pub netns_cookie: Option<u64>,
    pub netns_name: Option<String>,
    pub ifindex: u32,
    pub ifname: Option<String>,
    pub location: String,
    /// The netfilter hook the packet was inside ("ip input"): for
    /// NETFILTER_DROP, the hook whose chains dropped it.
    pub netfilter_hook: Option<String>,
    pub sample: String,
    pub means: Option<&'static str>,
    pub check: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub ts_ns: u64,
    pub interval_s: f64,
    pub drops: u64,
    pub rows: Vec<Row>,
    /// `--nft-trace`: the nftables rules that dropped packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nft_rules: Option<Vec<RuleRow>>,
}

impl Report for Summary {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        print_table(out, &self.rows, self.interval_s)?;
        match &self.nft_rules {
            Some(rules) => print_rules(out, rules, self.interval_s),
            None => Ok(()),
        }
    }
}

fn print_table(out: &mut dyn Write, rows: &[Row], interval: f64) -> io::Result<()> {
    writeln!(
        out,
        "{:>8} {:>9}  {:<22} {:<14} {:<10} {:<32} SAMPLE",
        format!("/{interval:.0}s"),
        "TOTAL",
        "REASON",
        "NETNS",
        "IFACE",
        "WHERE"
    )?;
    for r in rows {
        let ns = r.netns_name.clone().unwrap_or_else(|| {
            if r.netns == 0 {
                "-".into()
            } else {
                r.netns.to_string()
            }
        });
        writeln!(
            out,
            "{:>8} {:>9}  {:<22} {:<14} {:<10} {:<32} {}",
            r.count,
            r.total,
            r.reason,
            ns,
            r.ifname.as_deref().unwrap_or("-"),
            match &r.netfilter_hook {
                Some(h) => format!("{} ({h})", r.location),
                None => r.location.clone(),
            },
            r.sample
        )?;
        if let (Some(m), Some(c)) = (r.means, r.check) {
            writeln!(out, "{:>20}{m}; check: {c}", "")?;
        }
    }
    writeln!(out)
}
