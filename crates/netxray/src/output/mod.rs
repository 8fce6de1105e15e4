//! Printers: streams of records (trace, and journeys) go through
//! [`Printer`], dns and http records through [`l7::L7Printer`], reports and
//! listings (drops, stats, conn --top, doctor, hooks) through
//! [`report::Report`]; aligned text for people or JSON lines
//! for programs. Data goes to stdout only; status and warnings go to stderr
//! through `tracing`.

pub mod conn;
pub mod conn_top;
pub mod dns;
pub mod doctor;
pub mod drops;
pub mod hooks;
pub mod http;
pub mod journey;
mod json;
pub mod l7;
pub mod nft;
pub mod pathmap;
pub mod report;
pub mod stats;
pub mod threaded;

use crate::model::event::TraceEvent;
use crate::model::nft::NftEvent;
use std::io::{self, Write};

/// One event as a JSON object (no newline), appended to `out`: what `-o
/// json` prints per line.
pub fn render_json(out: &mut Vec<u8>, ev: &TraceEvent) {
    json::write_event(out, ev);
}

pub trait Printer {
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()>;
    /// The same, for a printer that keeps events (journeys): no copy.
    fn event_owned(&mut self, ev: TraceEvent) -> io::Result<()> {
        self.event(&ev)
    }
    /// An nftables trace message (`--nft-trace`), printed as it comes.
    fn nft(&mut self, ev: &NftEvent) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Time passes with no event (`now_ns`: wall clock, as event times).
    fn idle(&mut self, _now_ns: u64) -> io::Result<()> {
        Ok(())
    }
    /// The run is over: print what is still held.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Items printed, when they are not one per event (journeys).
    fn shown(&self) -> Option<u64> {
        None
    }
    /// What to add to the exit summary.
    fn summary_note(&self) -> Option<String> {
        None
    }
}

/// JSON lines, rendered straight into one large buffer that is written out
/// when it fills (and on every flush): one `write` per [`JSON_CHUNK`] bytes,
/// no copy through a line buffer.
pub struct JsonPrinter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

/// Bytes of JSON gathered before a write (a full trace writes hundreds of
/// MB/s: fewer, larger writes).
pub(crate) const JSON_CHUNK: usize = 1 << 20;

impl<W: Write> JsonPrinter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(JSON_CHUNK + 4096),
        }
    }

    fn write_buf(&mut self) -> io::Result<()> {
        let r = self.out.write_all(&self.buf);
        self.buf.clear();
        r
    }
}

impl<W: Write> Printer for JsonPrinter<W> {
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        json::write_event(&mut self.buf, ev);
        self.buf.push(b'\n');
        if self.buf.len() >= JSON_CHUNK {
            self.write_buf()?;
        }
        Ok(())
    }

    fn nft(&mut self, ev: &NftEvent) -> io::Result<()> {
        nft::write_json(&mut self.buf, ev);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.write_buf()?;
        }
        self.out.flush()
    }
}

pub struct TextPrinter<W: Write> {
    out: W,
    header_done: bool,
}

impl<W: Write> TextPrinter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            header_done: false,
        }
    }
}

/// `HH:MM:SS.micro` (UTC) of a wall-clock timestamp in ns.
pub fn clock(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1000;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

impl<W: Write> TextPrinter<W> {
    fn header(&mut self) -> io::Result<()> {
        if !self.header_done {
            writeln!(
                self.out,
                "{:<15} {:<14} {:<10} {:<32} WHAT",
                "TIME", "NETNS", "IFACE", "HOOK"
            )?;
            self.header_done = true;
        }
        Ok(())
    }
}

impl<W: Write> Printer for TextPrinter<W> {
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        self.header()?;
        let netns = match (&ev.netns_name, ev.netns) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "-".into(),
        };
        let iface = ev.ifname.as_deref().unwrap_or("-");
        write!(
            self.out,
            "{:<15} {:<14} {:<10} {:<32} {}",
            clock(ev.ts_ns),
            netns,
            iface,
            ev.hook,
            ev.summary
        )?;
        if let Some(r) = &ev.drop_reason {
            write!(self.out, " [drop {r}")?;
            if let Some(l) = &ev.location {
                write!(self.out, " at {l}")?;
            }
            if let Some(h) = &ev.nf_hook {
                write!(self.out, " in netfilter {h}")?;
            }
            write!(self.out, "]")?;
        }
        if let (Some(pid), Some(comm)) = (ev.pid, &ev.comm) {
            write!(self.out, " ({comm} {pid})")?;
        }
        if ev.followed {
            write!(self.out, " [followed]")?;
        }
        writeln!(self.out)?;
        for frame in ev.stack.iter().flatten() {
            writeln!(self.out, "{:>20}{frame}", "")?;
        }
        Ok(())
    }

    fn nft(&mut self, ev: &NftEvent) -> io::Result<()> {
        self.header()?;
        nft::write_text(&mut self.out, ev)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats() {
        assert_eq!(clock(3_723_000_456_789), "01:02:03.000456");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut buf = Vec::new();
        let mut p = JsonPrinter::new(&mut buf);
        p.event(&TraceEvent {
            hook: "net:net_dev_queue",
            ..Default::default()
        })
        .unwrap();
        p.flush().unwrap();
        drop(p);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        for f in [
            "ts_ns",
            "hook",
            "group",
            "skb",
            "netns",
            "ifindex",
            "ifname",
            "len",
            "cpu",
            "pid",
            "comm",
            "l3",
            "proto",
            "saddr",
            "daddr",
            "sport",
            "dport",
            "icmp_type",
            "icmp_code",
            "icmp_id",
            "icmp_seq",
            "tcp_flags",
            "drop_reason",
        ] {
            assert!(v.get(f).is_some(), "missing field {f}");
        }
    }
}
