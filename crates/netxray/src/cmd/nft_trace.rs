//! `--nft-trace` for `trace` and `drops`: the tracing tables in the
//! namespace watched, and the trace messages of the packets the filter
//! matches, as [`NftEvent`]s.

use crate::cli::FilterArgs;
use crate::cmd::filter::Scope;
use crate::error::Result;
use crate::kernel::netns::{self, Names};
use crate::kernel::nftables::NftTracer;
use crate::model::filter::Filter;
use crate::model::nft::{family, NftEvent, NftTrace, PacketsById};

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
    /// Tracing tables and subscription in `--netns` (netxray's own namespace
    /// without it).
    pub fn open(args: &FilterArgs, filter: &Filter, scope: &Scope) -> Result<Self> {
        let ns = match &args.netns {
            Some(spec) => netns::resolve(spec)?,
            None => netns::current()?,
        };
        let path = args.netns.is_some().then_some(ns.path.as_path());
        let tracer = NftTracer::open(path)?;
        for (fam, why) in &tracer.skipped {
            tracing::warn!("--nft-trace: no {} table: {why}", family::name(*fam));
        }
        tracing::info!(
            "--nft-trace: tables {} {} added in network namespace {} (removed by the kernel when netxray exits)",
            tracer.families_text(),
            tracer.table,
            args.netns.as_deref().unwrap_or("of netxray"),
        );
        Ok(Self {
            tracer,
            filter: filter.clone(),
            ifindex: scope.ifindex,
            netns: ns.inode,
            packets: PacketsById::default(),
            pending: Vec::new(),
            overruns_told: 0,
        })
    }

    /// The exit summary line: what was shown, and any loss.
    pub fn summary(&self, shown: u64) -> String {
        let mut s = format!(
            "--nft-trace: {shown} nftables trace lines shown; table {} removed",
            self.tracer.table
        );
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
            if self.ifindex != 0 && t.iif != Some(self.ifindex) && t.oif != Some(self.ifindex) {
                continue;
            }
            let mut ev = NftEvent::new(&t, &packet, ts, self.netns);
            ev.netns_name = names.netns_name(self.netns);
            ev.iifname = t.iif.and_then(|i| names.ifname(self.netns, i));
            ev.oifname = t.oif.and_then(|i| names.ifname(self.netns, i));
            f(ev);
        }
        Ok(())
    }
}
