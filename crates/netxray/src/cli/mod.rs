//! Command-line arguments (clap derive): one Args struct per subcommand,
//! shared flag groups flattened.

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod filter;
pub mod values;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "netxray",
    version,
    about = "An x-ray for the Linux network stack: see what the kernel did with your packets",
    long_about = None
)]
pub struct Cli {
    /// More diagnostics on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow packets through the stack on kernel tracepoints.
    Trace(Box<TraceArgs>),
    /// Where and why the kernel drops packets: counted in the kernel, a
    /// table per interval with advice per reason.
    Drops(Box<DropsArgs>),
    /// Live packet and bit rates per interface and direction at TC (and
    /// XDP), by protocol, with the top flows and sources: counted in the
    /// kernel.
    Stats(Box<StatsArgs>),
    /// The life of every TCP connection: one record per connection when it
    /// closes (who opened and owns it, bytes, retransmissions, RTT, how it
    /// ended), or every event as it happens.
    Conn(Box<ConnArgs>),
    /// Every DNS query a process on this host sends or answers, with its
    /// answer, latency and the processes on both sides (system calls on
    /// UDP and TCP sockets, any namespace).
    Dns(Box<DnsArgs>),
    /// Every HTTP/1.x request with its response, status, sizes and latency,
    /// and the processes on both sides (system calls on TCP sockets, any
    /// namespace; keep-alive and pipelining).
    Http(Box<HttpArgs>),
    /// Show the hook tree: groups, hooks, and whether this kernel has them.
    Hooks(HooksArgs),
    /// Check what this kernel and these privileges allow netxray to do.
    Doctor(DoctorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Text,
    /// One JSON object per line, for programs (schema: docs/json.md).
    Json,
}

/// When `--map` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MapWhen {
    /// At the end of the run.
    End,
    /// Under every journey, and at the end.
    Each,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Which packets to look at. Evaluated in the kernel: packets outside the
/// filter are dropped before they reach the ring buffer. The protocol,
/// address and port flags are shorthand for filter expressions.
#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Read the filter expression from FILE, as tcpdump -F (text after `#`
    /// on a line is a comment). Not with an expression on the command line.
    #[arg(short = 'F', long = "filter-file", value_name = "FILE")]
    pub filter_file: Option<std::path::PathBuf>,
    /// Protocol: ip, ip6, arp, tcp, udp, icmp, icmp6, sctp (the expression `PROTO`).
    #[arg(short = 'p', long)]
    pub proto: Option<String>,
    /// Source or destination address, IPv4/IPv6, CIDR allowed (`host A` or `net A/N`).
    #[arg(long)]
    pub addr: Option<String>,
    /// Source address (IPv4/IPv6, CIDR allowed).
    #[arg(short = 's', long)]
    pub saddr: Option<String>,
    /// Destination address (IPv4/IPv6, CIDR allowed).
    #[arg(short = 'd', long)]
    pub daddr: Option<String>,
    /// Source or destination TCP/UDP/SCTP port or range lo-hi (`port P`, `portrange R`).
    #[arg(long)]
    pub port: Option<String>,
    /// Source TCP/UDP port.
    #[arg(long)]
    pub sport: Option<String>,
    /// Destination TCP/UDP port.
    #[arg(long)]
    pub dport: Option<String>,
    /// Only packets on this interface (name in the --netns namespace, or
    /// netxray's own namespace without --netns).
    #[arg(short = 'i', long = "iface")]
    pub iface: Option<String>,
    /// Only this network namespace: an inode number, a name under
    /// /run/netns, or a path such as /proc/PID/ns/net.
    #[arg(long)]
    pub netns: Option<String>,
    /// Only events raised in this process's context (sending, socket calls).
    /// Received packets are processed in softirq context, which belongs to
    /// no process, so they are not attributed to any pid.
    #[arg(long)]
    pub pid: Option<u32>,
}

/// What every long-running subcommand takes: how long it runs and how a
/// script knows it has started (cmd/run.rs drives them).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Stop after this many events (trace), connections or records (conn),
    /// or reports (drops, stats, conn --top).
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_parser = values::duration)]
    pub duration: Option<f64>,
    /// Write this file (netxray's pid) once everything is attached: scripts
    /// and tests wait on it.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Hooks to trace: groups or hook names, comma separated (see `netxray hooks`).
    /// Default: every hook this kernel has but the `ret` and `netfilter`
    /// groups (the word `default` stands for that set: `-t default,netfilter`).
    #[arg(short = 't', long = "hooks", value_delimiter = ',')]
    pub hooks: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Ring buffer size in KiB (a power of two, 4 to 2097152).
    #[arg(long, default_value_t = 8192, value_parser = values::ring_kib)]
    pub ring_size: u32,
    /// Bytes of each packet to copy from the kernel (1 to 128).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub snaplen: u32,
    /// Group events per packet: one block (or JSON object) per packet
    /// journey, printed when it ends, with the time between hops, how it
    /// ended, NAT rewrites, and a reply paired with its request. `-c` counts
    /// journeys.
    #[arg(long)]
    pub journey: bool,
    /// With --journey: draw the paths seen (one box per namespace,
    /// interfaces in order, request and reply) at the end of the run, or
    /// with `--map=each` also under every journey.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_missing_value = "end", requires = "journey", value_name = "WHEN")]
    pub map: Option<MapWhen>,
    /// With --journey, text: the skb address, CPU and task on every hop.
    #[arg(long, requires = "journey")]
    pub detail: bool,
    /// With --journey: most journeys in flight; past it the oldest is closed
    /// (and counted).
    #[arg(long, default_value_t = 4096, requires = "journey")]
    pub max_journeys: usize,
    /// Keep following a packet that matched the filter after NAT or a clone
    /// takes it outside the filter (its data buffer is followed, for up to
    /// 2 s between hops, and its skb when the kernel moves it to a new
    /// buffer, as forwarding a TCP segment does); such hops are marked
    /// `followed`.
    #[arg(long)]
    pub follow: bool,
    /// Also show what the receive functions returned (`netif_rx`,
    /// `netif_receive_skb`, `napi_gro_receive`: queued or dropped, GRO merged
    /// or not), on the packet their entry hook matched: the exit hooks
    /// (group `ret`) join the traced set.
    #[arg(long)]
    pub ret: bool,
    /// Record the kernel stack at every hop, or only at the hooks named
    /// (`--stack=kfree_skb,net_dev_queue`).
    #[arg(long, num_args = 0.., value_delimiter = ',', require_equals = true, value_name = "HOOK")]
    pub stack: Option<Vec<String>>,
    /// Say in which netfilter hook each dropped packet (kfree_skb) was, as
    /// `netxray drops` does: netfilter links at every hook of the watched
    /// namespaces that only take notes (no netfilter events unless the
    /// `netfilter` hooks are traced too).
    #[arg(long = "drop-hooks")]
    pub nf_attribution: bool,
    /// XDP mode for `-t xdp` (generic by default: native XDP on veth copies
    /// every skb and turns GRO on).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "generic",
          value_enum, value_name = "MODE")]
    pub xdp: Option<XdpArg>,
    /// Also show which nftables rules each packet met (table, chain, rule
    /// handle, verdict), from the kernel's nftables trace. Changes the
    /// ruleset while it runs: adds a table `netxray_<pid>` (chains at
    /// prerouting and output that set `meta nftrace`) in the --netns
    /// namespace (netxray's own without it), which the kernel removes when
    /// netxray exits, however it exits. Needs CAP_NET_ADMIN.
    #[arg(long)]
    pub nft_trace: bool,
    /// A filter in tcpdump's language (pcap-filter(7)), as one argument or
    /// several words: `'tcp port 80 and not net 198.18.0.0/24'`. Evaluated in
    /// the kernel; combined with the shorthand flags by `and`. Options may
    /// come before or after it; put `--` before an expression that starts
    /// with `-`.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DropsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds between tables (or JSON summaries).
    #[arg(long, default_value_t = 1.0, value_parser = values::interval)]
    pub interval: f64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Rows shown per table, most drops first.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print every drop with its packet instead of counting (as
    /// `netxray trace -t kfree_skb`).
    #[arg(long)]
    pub events: bool,
    /// With --events: the kernel stack of every drop.
    #[arg(long, requires = "events")]
    pub stack: bool,
    /// Also count which nftables rules dropped packets (table, chain, rule
    /// handle), from the kernel's nftables trace (see `netxray trace
    /// --help`): adds a table `netxray_<pid>` in the --netns namespace
    /// (netxray's own without it) while it runs. With --events, every rule
    /// verdict as it happens.
    #[arg(long)]
    pub nft_trace: bool,
    /// A filter in tcpdump's language (see `netxray trace --help`).
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

/// XDP for `stats --xdp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpArg {
    /// Generic (skb) XDP: the packet path stays as it is.
    Generic,
    /// The driver's XDP (on veth it copies every skb and turns GRO on).
    Native,
}

impl From<XdpArg> for crate::kernel::stats::XdpMode {
    fn from(x: XdpArg) -> Self {
        match x {
            XdpArg::Generic => Self::Generic,
            XdpArg::Native => Self::Native,
        }
    }
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Interfaces to watch (repeatable); default: every interface of the
    /// namespace, also those created while running.
    #[arg(short = 'i', long = "iface")]
    pub ifaces: Vec<String>,
    /// The network namespace: an inode number, a name under /run/netns, or
    /// a path such as /proc/PID/ns/net (default: netxray's own).
    #[arg(long)]
    pub netns: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds between tables (or JSON snapshots).
    #[arg(long, default_value_t = 1.0, value_parser = values::interval)]
    pub interval: f64,
    /// Print one interval (counted from the start) and exit (`-c 1`).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub run: RunArgs,
    /// Top flows and sources shown.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Also count at XDP (opt-in: native XDP on veth changes the path it
    /// watches; generic keeps it). An interface whose XDP is taken keeps its
    /// program: netxray counts at TC there.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "generic",
          value_enum, value_name = "MODE")]
    pub xdp: Option<XdpArg>,
    /// Flow table size (least recently used flows are evicted, and counted;
    /// at least 16).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(16..))]
    pub flows: u32,
    /// A filter in tcpdump's language (see `netxray trace --help`): only
    /// matching packets are counted.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Load and attach every program netxray has (each hook of every
    /// group, conn's and stats' programs), without and with a filter, and
    /// say for each: ok, missing (the kernel lacks it), or REFUSED (the
    /// verifier refused netxray's program: a bug). Exit 1 on any refusal.
    /// Example: netxray hooks --load -i eth0
    #[arg(long)]
    pub load: bool,
    /// With --load: the interface for the tc and XDP programs (attached for
    /// the moment of the check).
    #[arg(short = 'i', long = "iface", requires = "load")]
    pub iface: Option<String>,
    /// With --load: the network namespace of -i (a name under /run/netns,
    /// an inode number or a path).
    #[arg(long, requires = "iface")]
    pub netns: Option<String>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `dns` and `http` share (cmd/l7.rs).
#[derive(Debug, Args)]
pub struct L7Args {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Only this process (tested in the kernel).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only processes of this name (their main thread's, as ps shows it; at
    /// most 15 bytes; tested in the kernel).
    #[arg(long, value_parser = values::comm)]
    pub comm: Option<String>,
    /// Only this network namespace: an inode number, a name under
    /// /run/netns, or a path such as /proc/PID/ns/net (tested in the kernel).
    #[arg(long)]
    pub netns: Option<String>,
    /// Seconds a request or query waits for its answer before it is
    /// reported without one.
    #[arg(long, default_value_t = 5.0, value_parser = values::interval)]
    pub timeout: f64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Ring buffer size in KiB (a power of two, 4 to 2097152).
    #[arg(long, default_value_t = 4096, value_parser = values::ring_kib)]
    pub ring_size: u32,
    /// A filter on addresses and ports in tcpdump's language, on the
    /// socket's flow (the peer of an unconnected UDP socket is the address
    /// the call names), tested in the kernel before anything is copied.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// (The expression defaults to `port 53`.)
    #[command(flatten)]
    pub l7: L7Args,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// (Without an expression: every TCP socket; what is not HTTP is
    /// ignored.)
    #[command(flatten)]
    pub l7: L7Args,
}

#[derive(Debug, Args)]
pub struct ConnArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Also a line per event as it happens: state transitions,
    /// retransmissions, resets sent and received, accept().
    #[arg(long)]
    pub events: bool,
    /// Every state transition with the time spent in the previous state
    /// (instead of one record per connection).
    #[arg(long, conflicts_with = "events")]
    pub states: bool,
    /// Also show sockets starting and stopping to listen.
    #[arg(long)]
    pub listen: bool,
    /// Only connections owned by this process (the one that called
    /// connect(), or accept() on the passive side).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only connections owned by a process with this command name (at most
    /// 15 bytes, as the kernel keeps it).
    #[arg(long, value_parser = values::comm)]
    pub comm: Option<String>,
    /// Only this network namespace: an inode number, a name under
    /// /run/netns, or a path such as /proc/PID/ns/net (tested in the kernel).
    #[arg(long)]
    pub netns: Option<String>,
    /// Only connections that failed: never established (refused, timed out,
    /// aborted), reset, or timed out later.
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub run: RunArgs,
    /// Ring buffer size in KiB (a power of two, 4 to 2097152).
    #[arg(long, default_value_t = 4096, value_parser = values::ring_kib)]
    pub ring_size: u32,
    /// Connections followed at once (the kernel's table; past it the least
    /// recently active is evicted, and counted).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// A live table of the connections that moved the most bytes (send and
    /// receive calls) in each interval, like tcptop; refreshed in place on a
    /// terminal; with -o json one snapshot per interval.
    #[arg(long, conflicts_with_all = ["events", "states", "listen", "failed"])]
    pub top: bool,
    /// Seconds between --top tables.
    #[arg(long, default_value_t = 1.0, requires = "top", value_parser = values::interval)]
    pub interval: f64,
    /// Rows per --top table.
    #[arg(long, default_value_t = 20, requires = "top")]
    pub rows: usize,
    /// A filter on addresses and ports in tcpdump's language (`host`, `net`,
    /// `port`, `portrange`, `src`/`dst`, `ip`/`ip6`, and/or/not). A
    /// connection matches when a packet of it, either way, would.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}
