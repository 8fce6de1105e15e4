//! `--nft-trace` for `trace` and `drops`: the tracing tables in the
//! namespace watched, and the trace messages of the packets the filter
//! matches, as [`NftEvent`]s.

use crate::error::Result;
use crate::kernel::netns::{self, Names};
use crate::kernel::nftables::NftTracer;
use crate::model::event::proto_name;
use crate::model::filter::Filter;
use crate::model::nft::{family, marking_protocols, NftEvent, NftTrace, PacketsById};
use crate::model::value::NsId;

/// Datagrams read per poll (the socket keeps the rest for the next one).
const READ_BATCH: usize = 4096;

pub struct NftWatch {
    tracer: NftTracer,
    filter: Filter,
    /// `--iface`: only messages with this input or output device (0: any).
    ifindex: u32,
    netns: u32,
    packets: PacketsById,
    pending: Vec<NftTrace>,
    overruns_told: u64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl NftWatch {
    /// Tracing tables and subscription in the namespace `netns` names
    /// (`--netns`; netxray's own without it), for the packets `filter`
    /// keeps, on interface `ifindex` (0: any).
    pub fn open(netns: Option<&str>, filter: &Filter, ifindex: u32) -> Result<Self> {
        let ns = match netns {
            Some(spec) => netns::resolve(spec)?,
            None => netns::current()?,
        };
        let path = netns.is_some().then_some(ns.path.as_path());
        let protos = marking_protocols(filter);
        let tracer = NftTracer::open(path, &protos)?;
        for (fam, why) in &tracer.skipped {
            tracing::warn!("--nft-trace: no {} table: {why}", family::name(*fam));
        }
        let marking = if protos.is_empty() {
            "every packet".to_string()
        } else {
            let names: Vec<_> = protos.iter().map(|p| proto_name(*p)).collect();
            format!("{} packets", names.join("/"))
        };
        tracing::info!(
            "--nft-trace: tables {} {} added in network namespace {}, marking {marking} (removed by the kernel when netxray exits)",
            tracer.families_text(),
            tracer.table,
            netns.unwrap_or("of netxray"),
        );
        Ok(Self {
            tracer,
            filter: filter.clone(),
            ifindex,
            netns: ns.inode,
            packets: PacketsById::default(),
            pending: Vec::new(),
            overruns_told: 0,
        })
    }

    /// The exit summary line: what was shown, and any loss.
    pub fn summary(&self, done: &str) -> String {
        let mut s = format!("--nft-trace: {done}; table {} removed", self.tracer.table);
        if self.tracer.overruns > 0 {
            s += &format!(
                "; trace messages lost {} times (socket buffer full)",
                self.tracer.overruns
            );
        }
        if self.tracer.undecodable > 0 {
            s += &format!("; {} undecodable", self.tracer.undecodable);
        }
        s
    }

    /// The trace messages waiting, for packets the filter matches, in the
    /// order the kernel sent them (netxray's own tables left out).
    pub fn poll(&mut self, names: &mut Names, mut f: impl FnMut(NftEvent)) -> Result<()> {
        self.tracer.read(&mut self.pending, READ_BATCH)?;
        if self.tracer.overruns > self.overruns_told {
            tracing::warn!(
                "--nft-trace: the kernel dropped trace messages (socket buffer full, {} times): use a narrower filter",
                self.tracer.overruns
            );
            self.overruns_told = self.tracer.overruns;
        }
        let ts = now_ns();
        for t in self.pending.drain(..) {
            // Headers come with the first message of each base chain, often
            // netxray's own: remember them before skipping that message.
            let Some(packet) = self.packets.packet_of(&t) else {
                continue;
            };
            if t.is_netxray() || !packet.matches(&self.filter) {
                continue;
            }
            let mut ev = NftEvent::new(&t, &packet, ts, self.netns);
            if self.ifindex != 0 && ev.iif != Some(self.ifindex) && ev.oif != Some(self.ifindex) {
                continue;
            }
            ev.netns_name = names.netns_name(NsId::new(self.netns, 0));
            ev.iifname = ev
                .iif
                .and_then(|i| names.ifname(NsId::new(self.netns, 0), i));
            ev.oifname = ev
                .oif
                .and_then(|i| names.ifname(NsId::new(self.netns, 0), i));
            f(ev);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::nft::RuleDrops;
    use crate::output::nft::print_rules;

    fn drop_at(handle: u64, verdict: &str) -> NftEvent {
        NftEvent {
            kind: "nft",
            netns: 7,
            family: "inet",
            table: "filter".into(),
            chain: "input".into(),
            handle: Some(handle),
            trace_type: "rule",
            verdict: Some(verdict.into()),
            summary: format!("packet {handle}"),
            ..Default::default()
        }
    }

    #[test]
    fn counts_drops_per_rule_and_interval() {
        let mut r = RuleDrops::default();
        for _ in 0..3 {
            r.add(drop_at(4, "drop"));
        }
        r.add(drop_at(5, "accept"));
        r.add(drop_at(5, "continue"));
        let rows = r.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].handle, rows[0].count, rows[0].total),
            (Some(4), 3, 3)
        );
        r.add(drop_at(4, "drop"));
        let rows = r.rows();
        assert_eq!((rows[0].count, rows[0].total), (1, 4));
        let mut out = Vec::new();
        print_rules(&mut out, &rows, 1.0).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("inet filter input handle 4 (drop)"), "{text}");
    }
}
