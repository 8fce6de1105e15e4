//! `trace --journey`: one block (text) or one object (JSON) per packet
//! journey, printed when the journey ends; `--map` draws the paths at the
//! end of the run.

use super::json::{json_object, Field};
use super::pathmap::{self, MapPath};
use super::Printer;
use crate::model::event::TraceEvent;
use crate::model::journey::{End, Hop, Journey, JourneyConfig, Tracker};
use crate::model::nft::NftEvent;
use crate::model::value::SkbAddr;
use serde::{Serialize, Serializer};
use serde_json::json;
use std::borrow::Cow;
use std::io::{self, Write};

/// How journeys are shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct JourneyStyle {
    pub json: bool,
    /// Text: skb address, CPU and task on every hop.
    pub detail: bool,
    /// Draw the paths seen at the end of the run.
    pub map: bool,
    /// Text: also draw each journey's path under it.
    pub map_each: bool,
}

/// (namespace, interface) in the order crossed.
type Path = Vec<(String, String)>;

pub struct JourneyPrinter<W: Write> {
    out: W,
    /// JSON gathered before a write (as the event printer does).
    buf: Vec<u8>,
    style: JourneyStyle,
    tracker: Tracker,
    done: Vec<Journey>,
    printed: u64,
    /// `--count`: journeys beyond it are not printed (nor drawn).
    limit: Option<u64>,
    /// Distinct request paths and the reply path paired with each, for --map.
    paths: Vec<(Path, Option<Path>)>,
    /// Paths of journeys by id, kept while their reply may come.
    recent: std::collections::VecDeque<(u64, Path)>,
}

fn us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

fn end_text(e: &End) -> Cow<'static, str> {
    match e {
        End::Dropped {
            reason,
            location,
            at,
        } => {
            let note = crate::model::drops::advice_at(reason, location)
                .map_or_else(String::new, |(means, _)| format!(" ({means})"));
            format!("dropped: {reason} at {location} in {at}{note}").into()
        }
        End::Delivered { at, to } => format!("delivered in {at} to {to}").into(),
        End::Consumed { location, at } => format!("consumed at {location} in {at}").into(),
        End::TimedOut => {
            "no hop for the idle time: freed where no tracepoint fires (TCP receive buffers) or still queued".into()
        }
        End::BufferReused => {
            "freed where no tracepoint fires (or outside the hooks traced): a later packet got its buffer".into()
        }
        End::Evicted => "closed early: too many journeys in flight (--max-journeys)".into(),
        End::RunEnded => "still in flight when the run ended".into(),
    }
}

fn netns_of(e: &TraceEvent) -> String {
    match (&e.netns_name, e.netns) {
        (Some(n), _) => n.to_string(),
        (None, Some(i)) => i.to_string(),
        (None, None) => "-".into(),
    }
}

impl<W: Write> JourneyPrinter<W> {
    pub fn new(out: W, style: JourneyStyle, cfg: JourneyConfig) -> Self {
        Self {
            out,
            buf: Vec::new(),
            style,
            tracker: Tracker::new(cfg),
            done: Vec::new(),
            printed: 0,
            limit: None,
            paths: Vec::new(),
            recent: std::collections::VecDeque::new(),
        }
    }

    /// Print at most `n` journeys (`--count`): one event may end several,
    /// and the end of the run ends all those in flight.
    pub fn with_limit(mut self, n: Option<u64>) -> Self {
        self.limit = n;
        self
    }

    fn write_done(&mut self) -> io::Result<()> {
        // Taken and given back: the list keeps its room for the next ones.
        let mut done = std::mem::take(&mut self.done);
        let r = self.write_journeys(&mut done);
        done.clear();
        self.done = done;
        r
    }

    fn write_journeys(&mut self, done: &mut Vec<Journey>) -> io::Result<()> {
        for j in done.drain(..) {
            if self.limit.is_some_and(|l| self.printed >= l) {
                break;
            }
            if self.style.map {
                self.note_path(&j);
            }
            if self.style.json {
                to_json(&j).put(&mut self.buf);
                self.buf.push(b'\n');
                if self.buf.len() >= super::JSON_CHUNK {
                    self.write_buf()?;
                }
            } else {
                write_text(&mut self.out, &j, self.style.detail)?;
                if self.style.map_each {
                    let label = if j.reply_to.is_some() {
                        "reply"
                    } else {
                        "path"
                    };
                    let drawing = pathmap::render(&[MapPath {
                        label: label.into(),
                        hops: j.path(),
                    }]);
                    writeln!(self.out, "{drawing}")?;
                }
            }
            self.printed += 1;
        }
        Ok(())
    }

    fn write_buf(&mut self) -> io::Result<()> {
        let r = self.out.write_all(&self.buf);
        self.buf.clear();
        r
    }

    fn note_path(&mut self, j: &Journey) {
        let path = j.path();
        if path.is_empty() {
            return;
        }
        match j
            .reply_to
            .and_then(|(req, _)| self.recent.iter().find(|(id, _)| *id == req))
        {
            Some((_, req_path)) => {
                let req_path = req_path.clone();
                if let Some(entry) = self.paths.iter_mut().find(|(p, _)| *p == req_path) {
                    entry.1.get_or_insert(path);
                }
            }
            None => {
                if !self.paths.iter().any(|(p, _)| *p == path) && self.paths.len() < 8 {
                    self.paths.push((path.clone(), None));
                }
                self.recent.push_back((j.id, path));
                if self.recent.len() > 1024 {
                    self.recent.pop_front();
                }
            }
        }
    }
}

fn write_text<W: Write>(out: &mut W, j: &Journey, detail: bool) -> io::Result<()> {
    writeln!(
        out,
        "journey #{}  {}  [{} hops, {}]",
        j.id,
        j.summary(),
        j.hops.len(),
        us(j.duration_ns())
    )?;
    for h in &j.hops {
        let e = &h.event;
        write!(
            out,
            "  {:>11} {:>11}  {:<14} {:<10} {:<30}",
            format!("+{}", us(h.delta_ns)),
            us(h.since_first_ns),
            netns_of(e),
            e.ifname.as_deref().unwrap_or("-"),
            e.hook
        )?;
        if e.kind != "packet" {
            write!(out, " {}", e.summary)?;
        } else if let Some(d) = &e.detail {
            write!(out, " {d}")?;
        }
        if let Some(r) = &e.drop_reason {
            write!(out, " drop {r}")?;
            if let Some(l) = &e.location {
                write!(out, " at {l}")?;
            }
            if let Some(h) = &e.nf_hook {
                write!(out, " in netfilter {h}")?;
            }
        }
        if e.followed {
            write!(out, " [followed]")?;
        }
        if detail {
            write!(out, " skb {}", e.skb.map_or("-".into(), |s| s.to_string()))?;
            write!(out, " cpu {}", e.cpu)?;
            if let (Some(pid), Some(comm)) = (e.pid, &e.comm) {
                write!(out, " {comm} {pid}")?;
            }
        }
        writeln!(out)?;
        if let Some((from, to)) = &h.rewrite {
            writeln!(out, "{:>28}rewritten: {from} -> {to}", "")?;
        }
        for frame in e.stack.iter().flatten() {
            writeln!(out, "{:>28}{frame}", "")?;
        }
    }
    if let Some((req, rtt)) = j.reply_to {
        writeln!(out, "  reply to journey #{req}: {} in this host", us(rtt))?;
    }
    writeln!(out, "  end: {}", end_text(&j.end))?;
    writeln!(out)
}

/// One journey as JSON (docs/json.md), fields in this order.
#[derive(Serialize)]
struct JourneyJson<'a> {
    journey: u64,
    summary: &'a str,
    first_ts_ns: u64,
    duration_ns: u64,
    reply_to: Option<u64>,
    rtt_ns: Option<u64>,
    end: EndJson<'a>,
    hops: HopsJson<'a>,
}

/// A journey's hops, each rendered as `HopJson` where it is written (no
/// list of them built first).
struct HopsJson<'a>(&'a [Hop]);

impl Serialize for HopsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(hop_json))
    }
}

impl Field for HopsJson<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, h) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            hop_json(h).put(out);
        }
        out.push(b']');
    }
}

#[derive(Serialize)]
struct EndJson<'a> {
    kind: &'static str,
    reason: Option<&'a str>,
    location: Option<&'a str>,
    at: Option<&'a str>,
    to: Option<&'a str>,
    text: Cow<'static, str>,
}

#[derive(Serialize)]
struct HopJson<'a> {
    ts_ns: u64,
    delta_ns: u64,
    since_first_ns: u64,
    hook: &'static str,
    kind: &'static str,
    skb: Option<SkbAddr>,
    netns: Option<u32>,
    netns_name: Option<&'a str>,
    ifindex: Option<u32>,
    ifname: Option<&'a str>,
    cpu: u32,
    pid: Option<u32>,
    comm: Option<&'a str>,
    followed: bool,
    rewrite: Option<RewriteJson<'a>>,
    ret: Option<i32>,
    detail: Option<&'a str>,
    stack: Option<&'a [String]>,
    summary: &'a str,
}

#[derive(Serialize)]
struct RewriteJson<'a> {
    from: &'a str,
    to: &'a str,
}

fn hop_json(h: &Hop) -> HopJson<'_> {
    let e = &h.event;
    HopJson {
        ts_ns: e.ts_ns,
        delta_ns: h.delta_ns,
        since_first_ns: h.since_first_ns,
        hook: e.hook,
        kind: e.kind,
        skb: e.skb,
        netns: e.netns,
        netns_name: e.netns_name.as_ref().map(|n| n.as_str()),
        ifindex: e.ifindex,
        ifname: e.ifname.as_ref().map(|n| n.as_str()),
        cpu: e.cpu,
        pid: e.pid,
        comm: e.comm.as_ref().map(|n| n.as_str()),
        followed: e.followed,
        rewrite: h
            .rewrite
            .as_ref()
            .map(|(from, to)| RewriteJson { from, to }),
        ret: e.ret,
        detail: e.detail.as_deref(),
        stack: e.stack.as_deref(),
        summary: &e.summary,
    }
}

fn to_json(j: &Journey) -> JourneyJson<'_> {
    let hops = HopsJson(&j.hops);
    let (reason, location, at, to) = match &j.end {
        End::Dropped {
            reason,
            location,
            at,
        } => (
            Some(reason.as_str()),
            Some(location.as_str()),
            Some(at.as_str()),
            None,
        ),
        End::Delivered { at, to } => (None, None, Some(at.as_str()), Some(to.as_str())),
        End::Consumed { location, at } => (None, Some(location.as_str()), Some(at.as_str()), None),
        _ => (None, None, None, None),
    };
    JourneyJson {
        journey: j.id,
        summary: j.summary(),
        first_ts_ns: j.first_ts(),
        duration_ns: j.duration_ns(),
        reply_to: j.reply_to.map(|(id, _)| id),
        rtt_ns: j.reply_to.map(|(_, rtt)| rtt),
        end: EndJson {
            kind: j.end.kind(),
            reason,
            location,
            at,
            to,
            text: end_text(&j.end),
        },
        hops,
    }
}

// Written by hand (output/json.rs) as the events are; serde's rendering of
// the same structs is the reference (tests).
impl Field for JourneyJson<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        json_object!(out, self; journey, summary, first_ts_ns, duration_ns, reply_to, rtt_ns, end, hops);
    }
}

impl Field for EndJson<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        json_object!(out, self; kind, reason, location, at, to, text);
    }
}

impl Field for HopJson<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        json_object!(out, self;
            ts_ns, delta_ns, since_first_ns, hook, kind, skb, netns, netns_name, ifindex,
            ifname, cpu, pid, comm, followed, rewrite, ret, detail, stack, summary);
    }
}

impl Field for RewriteJson<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        json_object!(out, self; from, to);
    }
}

impl<W: Write> Printer for JourneyPrinter<W> {
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        self.event_owned(ev.clone())
    }

    fn event_owned(&mut self, ev: TraceEvent) -> io::Result<()> {
        self.tracker.push(ev, &mut self.done);
        self.write_done()
    }

    fn idle(&mut self, now_ns: u64) -> io::Result<()> {
        self.tracker.expire(now_ns, &mut self.done);
        self.write_done()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.tracker.finish(&mut self.done);
        self.write_done()?;
        self.write_buf()?;
        if self.style.map && !self.paths.is_empty() {
            let mut drawings = Vec::new();
            for (req, rep) in &self.paths {
                drawings.push(MapPath {
                    label: "request".into(),
                    hops: req.clone(),
                });
                if let Some(rep) = rep {
                    drawings.push(MapPath {
                        label: "reply".into(),
                        hops: rep.clone(),
                    });
                }
            }
            if self.style.json {
                let paths: Vec<serde_json::Value> = drawings
                    .iter()
                    .map(|p| json!({"map": p.label, "hops": p.hops.iter().map(|(n, i)| json!({"netns_name": n, "ifname": i})).collect::<Vec<_>>()}))
                    .collect();
                for p in paths {
                    serde_json::to_writer(&mut self.out, &p)?;
                    writeln!(self.out)?;
                }
            } else {
                write!(self.out, "{}", pathmap::render(&drawings))?;
            }
        }
        Ok(())
    }

    fn nft(&mut self, ev: &NftEvent) -> io::Result<()> {
        // Rule verdicts as they come, between the journeys.
        if self.style.json {
            super::nft::write_json(&mut self.buf, ev);
            Ok(())
        } else {
            super::nft::write_text(&mut self.out, ev)
        }
    }

    fn shown(&self) -> Option<u64> {
        Some(self.printed)
    }

    fn summary_note(&self) -> Option<String> {
        Some(format!(
            "{} journeys{}",
            self.printed,
            match self.tracker.evicted {
                0 => String::new(),
                n => format!(" ({n} closed early: more than --max-journeys in flight)"),
            }
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.write_buf()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::journey::Hop;

    fn hop(ts: u64, hook: &'static str, ifname: &str) -> Hop {
        Hop {
            event: TraceEvent {
                ts_ns: ts,
                hook,
                kind: "packet",
                skb: Some(SkbAddr(0xffff_8881_09af_e200)),
                netns: Some(4026532246),
                netns_name: Some("we\"ird\\ns".into()),
                ifindex: Some(2),
                ifname: Some(ifname.into()),
                cpu: 1,
                pid: Some(7),
                comm: Some("nétx".into()),
                ret: Some(-22),
                stack: Some(vec!["a+0x1".into(), "b\t+0x2".into()]),
                summary: "IP 198.18.0.1.35803 > 198.18.0.2.9: UDP, length 5".into(),
                ..Default::default()
            },
            delta_ns: 5,
            since_first_ns: 5,
            rewrite: Some(("a > b".into(), "a > c\n".into())),
        }
    }

    #[test]
    fn journey_json_is_serdes() {
        let ends = [
            End::Dropped {
                reason: "NO_SOCKET".into(),
                location: "udp_rcv".into(),
                at: "b vb".into(),
            },
            End::Delivered {
                at: "b vb".into(),
                to: "nc (7)".into(),
            },
            End::BufferReused,
        ];
        for (i, end) in ends.into_iter().enumerate() {
            let mut j = Journey {
                id: 3 + i as u64,
                hops: vec![
                    hop(100, "net:net_dev_queue", "va"),
                    hop(105, "net:netif_rx", "vb"),
                ],
                end,
                reply_to: (i == 1).then_some((2, 77)),
            };
            if i == 2 {
                j.hops[0].event = TraceEvent::default();
                j.hops[1].rewrite = None;
            }
            let mut ours = Vec::new();
            to_json(&j).put(&mut ours);
            let reference = serde_json::to_string(&to_json(&j)).expect("serde");
            assert_eq!(String::from_utf8(ours).expect("UTF-8"), reference);
        }
    }
    #[test]
    fn count_limits_the_journeys_printed_even_when_one_event_ends_several() {
        let style = JourneyStyle {
            json: true,
            detail: false,
            map: true,
            map_each: false,
        };
        let mut p =
            JourneyPrinter::new(Vec::new(), style, JourneyConfig::default()).with_limit(Some(2));
        for id in 1..=3 {
            p.done.push(Journey {
                id,
                hops: vec![hop(100, "net:net_dev_queue", "va")],
                end: End::BufferReused,
                reply_to: None,
            });
        }
        p.write_done().expect("write");
        p.finish().expect("finish");
        p.flush().expect("flush");
        assert_eq!(p.shown(), Some(2));
        let out = String::from_utf8(p.out.clone()).expect("UTF-8");
        let journeys = out
            .lines()
            .filter(|l| l.starts_with("{\"journey\""))
            .count();
        assert_eq!(journeys, 2, "{out}");
    }
}
