//! netxray stats: counters read from the kernel turned into what happened in
//! one interval: rates per interface and direction, by protocol, the top
//! flows and the top sources. This is the JSON schema (docs/json.md).

use netxray_abi::{FlowKey, FlowVal, IfKey, IfStats, L3_NAMES, L4_NAMES};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IfaceReport {
    pub ifname: String,
    pub ifindex: u32,
    /// `xdp`, `in` (tc ingress) or `out` (tc egress).
    pub dir: &'static str,
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
    /// Bits per second (frame bytes × 8).
    pub bps: f64,
    /// By network protocol: ipv4, ipv6, arp, other.
    pub l3: BTreeMap<&'static str, Count>,
    /// By transport protocol: tcp, udp, icmp (and ICMPv6), other, none (not IP).
    pub l4: BTreeMap<&'static str, Count>,
    /// TCP SYN without ACK (connection attempts) and RST, in the interval.
    pub tcp_syn: u64,
    pub tcp_rst: u64,
    /// Packets outside the filter (not counted above).
    pub filtered: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowReport {
    pub ifname: String,
    pub dir: &'static str,
    pub proto: String,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// Ports; ICMP: echo id and type<<8|code.
    pub sport: u16,
    pub dport: u16,
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
    pub bps: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceReport {
    pub saddr: IpAddr,
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
    pub bps: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlowTable {
    /// Flows in the table now, and its size.
    pub entries: u64,
    pub capacity: u32,
    /// Flows evicted since the start (least recently used first).
    pub evicted: u64,
    /// Flows that could not be inserted at all.
    pub failed: u64,
    /// Flows seen but not in the table yet: the last flow of a CPU is
    /// counted on that CPU until another flow comes.
    pub pending: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub ts_ns: u64,
    pub interval_s: f64,
    pub netns: u32,
    pub netns_name: Option<String>,
    pub interfaces: Vec<IfaceReport>,
    /// Busiest flows of the interval (per interface and direction).
    pub flows: Vec<FlowReport>,
    /// Busiest sources of the interval, over what was received (tc ingress).
    pub sources: Vec<SourceReport>,
    pub flow_table: FlowTable,
}

fn addr(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == 2 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}

pub fn dir_name(dir: u32) -> &'static str {
    match dir {
        netxray_abi::stats_dir::XDP => "xdp",
        netxray_abi::stats_dir::TC_INGRESS => "in",
        netxray_abi::stats_dir::TC_EGRESS => "out",
        _ => "?",
    }
}

/// Interval deltas between successive snapshots.
#[derive(Debug, Default)]
pub struct Rates {
    prev_if: BTreeMap<IfKey, IfStats>,
    prev_flows: HashMap<FlowKey, FlowVal>,
}

/// One snapshot's inputs.
pub struct Sample<'a> {
    pub ifaces: &'a BTreeMap<IfKey, IfStats>,
    pub flows: &'a [(FlowKey, FlowVal)],
    /// Interfaces watched, by index: name, and whether XDP counts there.
    pub names: &'a BTreeMap<u32, (String, bool)>,
    pub flows_inserted: u64,
    pub flows_failed: u64,
    pub capacity: u32,
    /// Flows in the kernel's table (the rest of `flows` waits in a CPU's
    /// last-flow slot).
    pub entries: u64,
}

impl Rates {
    /// What happened since the previous call (or since the start).
    pub fn report(&mut self, s: &Sample<'_>, interval_s: f64, top: usize) -> Report {
        let per_s = |n: u64| {
            if interval_s > 0.0 {
                n as f64 / interval_s
            } else {
                0.0
            }
        };
        let mut interfaces = Vec::new();
        let zero = IfStats::default();
        // Every watched interface and direction, counted or not.
        let keys = s.names.iter().flat_map(|(i, (_, xdp))| {
            let dirs: &[u32] = if *xdp { &[0, 1, 2] } else { &[1, 2] };
            dirs.iter().map(|d| IfKey {
                ifindex: *i,
                dir: *d,
            })
        });
        for k in keys {
            let Some((name, _)) = s.names.get(&k.ifindex) else {
                continue;
            };
            let v = s.ifaces.get(&k).unwrap_or(&zero);
            let d = v.since(self.prev_if.get(&k).unwrap_or(&zero));
            let by = |names: &[&'static str], p: &[u64], b: &[u64]| {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        (
                            *n,
                            Count {
                                packets: p[i],
                                bytes: b[i],
                            },
                        )
                    })
                    .collect()
            };
            interfaces.push(IfaceReport {
                ifname: name.clone(),
                ifindex: k.ifindex,
                dir: dir_name(k.dir),
                packets: d.packets,
                bytes: d.bytes,
                pps: per_s(d.packets),
                bps: per_s(d.bytes * 8),
                l3: by(&L3_NAMES, &d.l3_packets, &d.l3_bytes),
                l4: by(&L4_NAMES, &d.l4_packets, &d.l4_bytes),
                tcp_syn: d.tcp_syn,
                tcp_rst: d.tcp_rst,
                filtered: d.filtered,
            });
        }
        let mut flows = Vec::new();
        let mut sources: HashMap<IpAddr, Count> = HashMap::new();
        let mut now = HashMap::with_capacity(s.flows.len());
        for (k, v) in s.flows {
            now.insert(*k, *v);
            // Evicted and seen again: counted from zero.
            let (p, b) = match self.prev_flows.get(k) {
                Some(o) if o.packets <= v.packets => (v.packets - o.packets, v.bytes - o.bytes),
                _ => (v.packets, v.bytes),
            };
            if p == 0 {
                continue;
            }
            let Some((name, _)) = s.names.get(&k.ifindex) else {
                continue;
            };
            let saddr = addr(k.family, &k.saddr);
            if k.dir as u32 == netxray_abi::stats_dir::TC_INGRESS {
                let c = sources.entry(saddr).or_insert(Count {
                    packets: 0,
                    bytes: 0,
                });
                c.packets += p;
                c.bytes += b;
            }
            flows.push(FlowReport {
                ifname: name.clone(),
                dir: dir_name(k.dir as u32),
                proto: crate::model::event::proto_name(k.proto).into_owned(),
                saddr,
                daddr: addr(k.family, &k.daddr),
                sport: k.sport,
                dport: k.dport,
                packets: p,
                bytes: b,
                pps: per_s(p),
                bps: per_s(b * 8),
            });
        }
        flows.sort_by(|a, b| b.packets.cmp(&a.packets).then(b.bytes.cmp(&a.bytes)));
        flows.truncate(top);
        let mut sources: Vec<SourceReport> = sources
            .into_iter()
            .map(|(saddr, c)| SourceReport {
                saddr,
                packets: c.packets,
                bytes: c.bytes,
                pps: per_s(c.packets),
                bps: per_s(c.bytes * 8),
            })
            .collect();
        sources.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then(b.bytes.cmp(&a.bytes))
                .then(a.saddr.cmp(&b.saddr))
        });
        sources.truncate(top);
        let entries = s.entries;
        let pending = (s.flows.len() as u64).saturating_sub(entries);
        self.prev_if = s.ifaces.clone();
        self.prev_flows = now;
        Report {
            ts_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            interval_s,
            netns: 0,
            netns_name: None,
            interfaces,
            flows,
            sources,
            flow_table: FlowTable {
                entries,
                capacity: s.capacity,
                evicted: s.flows_inserted.saturating_sub(entries),
                failed: s.flows_failed,
                pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(sport: u16, dir: u32) -> FlowKey {
        let mut k = FlowKey {
            family: 2,
            proto: 17,
            sport,
            dport: 53,
            dir: dir as u8,
            ifindex: 2,
            ..Default::default()
        };
        k.saddr[..4].copy_from_slice(&[198, 18, 0, 1]);
        k.daddr[..4].copy_from_slice(&[198, 18, 0, 2]);
        k
    }

    #[test]
    fn intervals_are_deltas_and_flows_are_ranked() {
        let names: BTreeMap<u32, (String, bool)> = [(2, ("vb".to_string(), false))].into();
        let key = IfKey { ifindex: 2, dir: 1 };
        let mut st = IfStats {
            packets: 10,
            bytes: 1000,
            ..Default::default()
        };
        st.l3_packets[0] = 10;
        let mut ifaces = BTreeMap::from([(key, st)]);
        let mut flows = vec![
            (
                flow(1000, 1),
                FlowVal {
                    packets: 7,
                    bytes: 700,
                    ..Default::default()
                },
            ),
            (
                flow(1001, 1),
                FlowVal {
                    packets: 3,
                    bytes: 300,
                    ..Default::default()
                },
            ),
        ];
        let mut r = Rates::default();
        let mut sample = |ifaces: &BTreeMap<IfKey, IfStats>, flows: &[(FlowKey, FlowVal)]| {
            r_report(&mut r, ifaces, flows, &names)
        };
        fn r_report(
            r: &mut Rates,
            ifaces: &BTreeMap<IfKey, IfStats>,
            flows: &[(FlowKey, FlowVal)],
            names: &BTreeMap<u32, (String, bool)>,
        ) -> Report {
            r.report(
                &Sample {
                    ifaces,
                    flows,
                    names,
                    flows_inserted: 3,
                    flows_failed: 0,
                    capacity: 16,
                    entries: 2,
                },
                2.0,
                10,
            )
        }
        let first = sample(&ifaces, &flows);
        assert_eq!(first.interfaces.len(), 2, "in and out, counted or not");
        assert_eq!(first.interfaces[1].packets, 0);
        assert_eq!(first.interfaces[0].packets, 10);
        assert_eq!(first.interfaces[0].pps, 5.0);
        assert_eq!(first.interfaces[0].bps, 4000.0);
        assert_eq!(first.interfaces[0].l3["ipv4"].packets, 10);
        assert_eq!(first.flows[0].sport, 1000);
        assert_eq!(first.sources[0].packets, 10);
        assert_eq!(first.flow_table.evicted, 1);
        ifaces.get_mut(&key).expect("key").packets = 15;
        flows[1].1.packets = 9;
        let second = sample(&ifaces, &flows);
        assert_eq!(second.interfaces[0].packets, 5);
        assert_eq!(second.flows.len(), 1, "the idle flow is not shown");
        assert_eq!(second.flows[0].sport, 1001);
        assert_eq!(second.flows[0].packets, 6);
    }
}
