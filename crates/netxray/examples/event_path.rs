//! The user-space cost of one event of a full trace, without the kernel: the
//! steps `netxray trace -o json` takes per ring-buffer record (decode, build
//! the event, correlate, render JSON), over records like the benchmark's
//! (UDP 64-byte datagrams over veth, two hooks per packet), into /dev/null
//! or a file. The flood benchmark (scripts/bench.sh) is noisy on 2 cores;
//! this is not, so it is the figure to watch when changing that path.
//!
//!     cargo run --release --example event_path [-- EVENTS [OUTPUT-FILE [journey]]]
//!
//! With `stages`, only the two halves apart (building events, rendering
//! JSON into memory), each timed: under `valgrind --tool=cachegrind` their
//! instruction counts are the steady figure on a noisy machine.
//!
//! With `journey`, the events go through `--journey -o json` instead (each
//! packet is two events, its datagrams in buffers reused every 64 packets
//! as the kernel's slab does; no life hook ends them, so they are closed
//! when a buffer is reused, as in the benchmark's seed-hook mode).

use netxray::model::correlate::Correlator;
use netxray::model::event::{Resolver, TraceEvent};
use netxray::model::journey::JourneyConfig;
use netxray::model::value::{Name, NameCache, NsId};
use netxray::output::journey::{JourneyPrinter, JourneyStyle};
use netxray::output::{JsonPrinter, Printer};
use netxray_abi::{hook_id, Event, RawEventHeader, ABI_VERSION};
use std::io::BufWriter;
use std::time::Instant;

struct Names(NameCache, Name);

impl Resolver for Names {
    fn netns_name(&mut self, _ns: NsId) -> Option<Name> {
        Some(self.1.clone())
    }
    fn ifname(&mut self, _ns: NsId, _ifindex: u32) -> Option<Name> {
        None
    }
    fn drop_reason(&self, _reason: u32) -> Option<Name> {
        None
    }
    fn rst_reason(&self, _reason: u32) -> Option<Name> {
        None
    }
    fn symbol(&self, _addr: u64) -> Option<String> {
        None
    }
    fn wall_ns(&self, mono_ns: u64) -> u64 {
        mono_ns + 1_795_000_000_000_000_000
    }
    fn name(&mut self, raw: &[u8; 16]) -> Name {
        self.0.get(raw)
    }
}

/// Ethernet + IPv4 + UDP + 64 bytes of payload, as the kernel captures it.
fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total: u16 = 20 + 8 + 64;
    f.extend([
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend([198, 18, 100, 1, 198, 18, 100, 2]);
    f.extend(sport.to_be_bytes());
    f.extend(9999u16.to_be_bytes());
    f.extend((8u16 + 64).to_be_bytes());
    f.extend([0, 0]);
    f.extend([0x5a; 64]);
    f
}

fn record(i: u64, hook: u16, frame: &[u8]) -> Vec<u8> {
    let mut comm = [0u8; 16];
    comm[..13].copy_from_slice(b"netxray-bench");
    let mut ifname = [0u8; 16];
    ifname[..2].copy_from_slice(if hook == hook_id::NET_DEV_QUEUE {
        b"va"
    } else {
        b"vb"
    });
    let hdr = RawEventHeader {
        ts_ns: 1_000_000 + i * 2_000,
        // Both hooks of a packet see one skb and buffer; the kernel hands
        // them out again every 64 packets.
        skb: 0xffff_8881_09af_e200 + (i / 2 % 64) * 0x100,
        head: 0xffff_8881_2000_0000 + (i / 2 % 64) * 0x800,
        abi_version: ABI_VERSION,
        kind: 1,
        hook,
        cpu: 0,
        pid: 4242,
        tgid: 4242,
        netns: 4026532455,
        ifindex: 2,
        len: frame.len() as u32,
        protocol: 0x0800,
        cap_len: frame.len() as u16,
        flags: 1,
        comm,
        ifname,
        ..Default::default()
    };
    Event::encode(&hdr, frame)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let path = args.next().unwrap_or_else(|| "/dev/null".into());
    let mode = args.next();
    let journey = mode.as_deref() == Some("journey");
    let only_stages = mode.as_deref() == Some("stages");
    let records: Vec<Vec<u8>> = (0..1024u64)
        .map(|i| {
            let hook = if i % 2 == 0 {
                hook_id::NET_DEV_QUEUE
            } else {
                hook_id::NETIF_RX
            };
            record(i, hook, &udp_frame(40000 + (i / 2) as u16))
        })
        .collect();
    let mut names = Names(NameCache::default(), Name::from("nxbench-a"));
    if only_stages {
        return stages(n, &records, &mut names);
    }
    let mut correlator = Correlator::new(false);
    let mut ready: Vec<TraceEvent> = Vec::new();
    let out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&path)?);
    let mut printer: Box<dyn Printer> = if journey {
        Box::new(JourneyPrinter::new(
            out,
            JourneyStyle {
                json: true,
                detail: false,
                map: false,
                map_each: false,
            },
            JourneyConfig::default(),
        ))
    } else {
        Box::new(JsonPrinter::new(out))
    };

    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    for i in 0..n {
        let rec = &records[(i % records.len() as u64) as usize];
        let ev = Event::decode(rec)?;
        let mut te = TraceEvent::from_raw(&ev, &mut names);
        // Time moves on as the records repeat.
        te.ts_ns = 1_000_000 + i * 2_000;
        correlator.push(te, ev.hdr.hook, ev.hdr.cpu, ev.hdr.skb, &mut ready);
        for te in ready.drain(..) {
            printer.event_owned(te)?;
        }
        if i % 4096 == 0 {
            printer.flush()?;
        }
    }
    printer.flush()?;
    let dt = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{n} events in {:.3} s: {:.0} ns/event wall, {:.0} ns/event CPU, into {path}",
        dt.as_secs_f64(),
        dt.as_nanos() as f64 / n as f64,
        cpu * 1e9 / n as f64,
    );
    if !journey {
        stages(n, &records, &mut names)?;
    }
    Ok(())
}

/// The two halves apart, as `trace` splits them between its reader and
/// writer threads: building events (decode, names, packet) and rendering
/// them as JSON (into memory, no write).
fn stages(n: u64, records: &[Vec<u8>], names: &mut Names) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut built = Vec::with_capacity(records.len());
    for i in 0..n {
        let rec = &records[(i % records.len() as u64) as usize];
        let ev = Event::decode(rec)?;
        let te = std::hint::black_box(TraceEvent::from_raw(&ev, names));
        if built.len() < records.len() {
            built.push(te);
        }
    }
    let build = t0.elapsed().as_nanos() as f64 / n as f64;
    let mut buf = Vec::with_capacity(1 << 21);
    let t0 = Instant::now();
    for i in 0..n {
        netxray::output::render_json(&mut buf, &built[(i % built.len() as u64) as usize]);
        if buf.len() > 1 << 20 {
            std::hint::black_box(&buf);
            buf.clear();
        }
    }
    let render = t0.elapsed().as_nanos() as f64 / n as f64;
    println!("stages: build {build:.0} ns/event, render {render:.0} ns/event");
    Ok(())
}

/// CPU time of this process (user + system): steadier than wall time when
/// other work shares the machine.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
