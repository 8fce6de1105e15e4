//! The conn session: load conn.bpf.o, configure it, attach its tracepoints,
//! and hand out its ring buffer and counters.
//!
//! Every attachment is fd-based (tp_btf links, syscall tracepoints through
//! perf events) and owned by the [`aya::Ebpf`] inside [`ConnSession`]:
//! dropping it, exiting or being killed detaches everything.

use crate::error::{Error, Result};
use crate::kernel::btf::KernelBtf;
use crate::kernel::ring::EventRing;
use crate::kernel::session::{AttachError, Session, SessionBuilder};
use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use netxray_abi::conn::{conn_cfg, ConnConfig, ConnCounter, ConnState};
use netxray_filter::ebpf::Compiled;

static CONN_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../bpf/conn.bpf.o");

/// x86-64 kernel stack size (THREAD_SIZE without KASAN).
const THREAD_SIZE: u32 = 16384;

/// The tracepoints `conn` needs: without them there is no connection to show.
const REQUIRED: &[&str] = &["inet_sock_set_state", "tcp_destroy_sock"];
/// What they add: retransmissions and resets seen as they happen.
const OPTIONAL: &[&str] = &["tcp_retransmit_skb", "tcp_send_reset", "tcp_receive_reset"];
/// --top: bytes per send and receive call.
pub const TOP_TRACEPOINTS: &[&str] = &["sock_send_length", "sock_recv_length"];
/// The owner of an accepted connection (syscall tracepoints).
const ACCEPT: &[&str] = &["sys_exit_accept4", "sys_exit_accept"];

/// What to load and how: the typed result of the CLI.
#[derive(Debug, Clone)]
pub struct ConnConfigArgs {
    pub netns: u32,
    /// A STATE record per transition.
    pub states: bool,
    /// RETRANS, RST_*, ACCEPT records.
    pub events: bool,
    /// LISTEN / LISTEN_STOP records.
    pub listen: bool,
    pub ring_bytes: u32,
    pub max_conns: u32,
    /// --top: count application bytes per connection.
    pub top: bool,
    /// The address/port filter compiled to BPF, spliced into the object and
    /// run on each record's tuple; None: no filter.
    pub filter_bpf: Option<Compiled>,
}

pub struct ConnSession {
    kernel: Session,
    ring_bytes: u32,
    /// Tracepoints attached, by name.
    pub attached: Vec<&'static str>,
    /// Optional tracepoints that could not be attached, with why.
    pub skipped: Vec<(&'static str, AttachError)>,
}

impl ConnSession {
    pub fn open(cfg: &ConnConfigArgs, kbtf: &KernelBtf) -> Result<Self> {
        if cfg.max_conns == 0 {
            return Err(Error::usage("--max-conns must be at least 1"));
        }
        let mut kernel = SessionBuilder::new("conn.bpf.o", CONN_OBJ)
            .filter(cfg.filter_bpf.as_ref())
            .ring("nx_conn_events", cfg.ring_bytes)?
            .map_size("nx_conns", cfg.max_conns)
            // trace.bpf.o's ring, brought in with the filter's header: unused.
            .map_size("nx_events", 4096)
            .load()?;
        let flags = [
            (cfg.states, conn_cfg::STATES),
            (cfg.events, conn_cfg::EVENTS),
            (cfg.listen, conn_cfg::LISTEN),
            (cfg.top, conn_cfg::TOP),
            (kernel.filtered, conn_cfg::FILTER),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |f, (_, bit)| f | bit);
        let config = ConnConfig {
            netns: cfg.netns,
            flags,
            wakeup_bytes: cfg.ring_bytes / 4,
            thread_size: THREAD_SIZE,
        };
        kernel.set_config("nx_conn_config", config)?;
        let mut session = ConnSession {
            kernel,
            ring_bytes: cfg.ring_bytes,
            attached: Vec::new(),
            skipped: Vec::new(),
        };
        // The optional ones first: a connection's end must not be seen
        // before its resets are.
        for name in OPTIONAL {
            match session.kernel.attach_tracepoint(name, kbtf) {
                Ok(()) => session.attached.push(name),
                Err(why) => session.skipped.push((name, why)),
            }
        }
        for name in ACCEPT {
            match session.kernel.attach_syscall(name) {
                Ok(()) => session.attached.push(name),
                Err(why) => session.skipped.push((name, why)),
            }
        }
        let top: &[&'static str] = if cfg.top { TOP_TRACEPOINTS } else { &[] };
        for name in REQUIRED.iter().chain(top) {
            session
                .kernel
                .attach_tracepoint(name, kbtf)
                .map_err(|why| why.into_error(name))?;
            session.attached.push(name);
        }
        Ok(session)
    }

    /// The ring buffer (can be taken once).
    pub fn take_ring(&mut self) -> Result<EventRing> {
        match self.kernel.take_map("nx_conn_events")? {
            Map::RingBuf(data) => EventRing::new(data, self.ring_bytes),
            _ => Err(Error::usage(
                "internal: nx_conn_events is not a ring buffer",
            )),
        }
    }

    /// The counters summed over CPUs.
    pub fn counters(&self) -> Result<ConnCounter> {
        self.kernel.sum_per_cpu("nx_conn_counters", 0)
    }

    /// Every entry of the connection table, by socket address (--top).
    pub fn table(&self) -> Result<Vec<(u64, ConnState)>> {
        let map = self.kernel.map("nx_conns")?;
        let h: BpfHashMap<&MapData, u64, ConnState> =
            BpfHashMap::try_from(map).map_err(|e| Error::kernel("opening nx_conns", e))?;
        // An entry deleted while iterating is skipped: it is gone.
        Ok(h.iter().filter_map(|r| r.ok()).collect())
    }

    /// Entries still in the connection table: (open, closed but not yet
    /// reported). With the counters this gives the LRU evictions:
    /// tracked - removed - entries left.
    pub fn entries_left(&self) -> Result<(u64, u64)> {
        let map = self.kernel.map("nx_conns")?;
        let h: BpfHashMap<&MapData, u64, ConnState> =
            BpfHashMap::try_from(map).map_err(|e| Error::kernel("opening nx_conns", e))?;
        let (mut open, mut closed) = (0, 0);
        for item in h.iter() {
            match item {
                Ok((_, st)) if st.flags & netxray_abi::conn::conn_flags::CLOSED != 0 => closed += 1,
                Ok(_) => open += 1,
                // An entry deleted while iterating: gone, not left.
                Err(_) => {}
            }
        }
        Ok((open, closed))
    }
}
