//! The kernel's filter as the tracing programs run it on this kernel: at a
//! real tracepoint, inline in the program and reading the packet where it
//! lies (kernels with BPF_FEAT_RDONLY_CAST_TO_VOID), rather than called as
//! the `nx_filter_jit` subprogram on a copy in the scratch record as the TC
//! twin of `filter_kernel.rs` does.
//!
//! The corpus frames are written one by one onto a veth by an AF_PACKET
//! socket, in a namespace of their own (both ends, no addresses, IPv6 off:
//! nothing answers, nothing leaves), and `netxray trace -t net:netif_rx`
//! reports the ones each expression keeps on the receiving end. Verdicts
//! must be the user-space evaluator's on the frame's first 128 bytes (the
//! evaluator is held to tcpdump by `filter_diff.rs`). Frames are told apart
//! by time: each is sent alone, ~1 ms apart, and netif_rx fires inside the
//! sender's `sendto`.

mod common;

use ::netxray::model::filter::{Filter, Frame};
use common::filter_corpus::*;
use common::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// NX_CAP_BYTES: what the kernel's filter can see.
const CAPTURED: usize = 128;
/// Time between two frames.
const GAP: Duration = Duration::from_micros(300);
/// How far an event's time may be outside its frame's `sendto` (the two
/// processes' wall-clock offsets, read moments apart).
const SLACK_NS: u64 = 50_000;

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Addresses a test may put on a wire: the test ranges, and the multicast,
/// broadcast, link-local and unspecified addresses protocols need.
fn v4_ok(a: Ipv4Addr) -> bool {
    traffic::is_test_addr(a.into())
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_link_local()
        || a.is_unspecified()
}

fn v6_ok(a: Ipv6Addr) -> bool {
    let s = a.segments();
    traffic::is_test_addr(a.into())
        || s[0] & 0xff00 == 0xff00
        || s[0] & 0xffc0 == 0xfe80
        || a.is_unspecified()
}

/// Whether every IPv4/IPv6 address in the frame's outer IP header (after up
/// to two VLAN tags) may be sent. Frames without an IP header go.
fn only_test_addresses(bytes: &[u8]) -> bool {
    let mut off = 12;
    let mut et = u16::from_be_bytes([bytes[12], bytes[13]]);
    for _ in 0..2 {
        if (et == 0x8100 || et == 0x88a8) && bytes.len() >= off + 6 {
            off += 4;
            et = u16::from_be_bytes([bytes[off], bytes[off + 1]]);
        }
    }
    let ip = &bytes[off + 2..];
    match et {
        0x0800 if ip.len() >= 20 => [12, 16].iter().all(|&i| {
            let b: [u8; 4] = ip[i..i + 4].try_into().expect("4 bytes");
            v4_ok(Ipv4Addr::from(b))
        }),
        0x86dd if ip.len() >= 40 => [8, 24].iter().all(|&i| {
            let b: [u8; 16] = ip[i..i + 16].try_into().expect("16 bytes");
            v6_ok(Ipv6Addr::from(b))
        }),
        // Not IP, or too short to hold addresses.
        _ => true,
    }
}

#[test]
fn filter_reading_packets_in_place_agrees_with_the_evaluator() {
    let Some(_serial) = e2e() else { return };
    let ns = Netns::new("fdirect");
    veth(&ns, "fd0", &ns, "fd1");
    for ifname in ["fd0", "fd1"] {
        ns.disable_ipv6(ifname);
        ns.up(ifname);
    }
    let ifindex = ns.ifindex("fd0");
    let packets = corpus();
    // AF_PACKET wants a whole Ethernet header; veth's MTU bounds the rest.
    let frames: Vec<(usize, &Packet)> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.bytes.len() >= 14 && p.bytes.len() <= 1514)
        .filter(|(_, p)| only_test_addresses(&p.bytes))
        .collect();
    assert!(
        frames.len() >= 100,
        "only {} frames can be sent",
        frames.len()
    );

    let mut report = String::new();
    let (mut checked, mut kept) = (0, 0);
    for (n, (expr, _)) in expected().into_iter().enumerate() {
        // Byte offsets (variable ones too) all, one in three of the rest:
        // the TC twin checks every expression on the same compiled code.
        if n % 3 != 0 && !expr.contains('[') {
            continue;
        }
        let Ok(filter) = Filter::parse(&expr) else {
            continue;
        };
        let run = NetxrayRun::new(netxray_bin())
            .args(["trace", "--output", "json", "-t", "net:netif_rx"])
            .args(["--netns", ns.name(), "-i", "fd1"])
            // In parentheses: `-ip[8] = -64` is not an option.
            .arg(format!("({expr})"))
            .start()
            .unwrap_or_else(|e| panic!("`{expr}`: netxray did not start: {e}"));
        // Each frame's sendto, (before, after) in wall-clock ns.
        let sent: Vec<(u64, u64)> = in_netns(&ns, || {
            let sock = FrameSender::new(ifindex).expect("AF_PACKET socket");
            frames
                .iter()
                .map(|(_, p)| {
                    let before = wall_ns();
                    sock.send(&p.bytes).expect("sendto");
                    let after = wall_ns();
                    std::thread::sleep(GAP);
                    (before, after)
                })
                .collect()
        });
        let out = run.stop();
        assert!(out.status.success(), "`{expr}`: {}", out.stderr);
        let mut got = Vec::new();
        for ev in out.json() {
            let ts = ev["ts_ns"]
                .as_u64()
                .unwrap_or_else(|| panic!("no ts_ns: {ev}"));
            let k = sent
                .iter()
                .position(|&(b, a)| b.saturating_sub(SLACK_NS) <= ts && ts <= a + SLACK_NS)
                .unwrap_or_else(|| {
                    panic!(
                        "`{expr}`: an event at no frame's sendto ({} ns after the first): {ev}",
                        ts as i128 - sent[0].0 as i128
                    )
                });
            got.push(frames[k].0);
        }
        got.sort_unstable();
        got.dedup();
        let want: Vec<usize> = frames
            .iter()
            .filter(|(_, p)| {
                let head = Frame {
                    data: &p.bytes[..p.bytes.len().min(CAPTURED)],
                    len: p.bytes.len() as u32,
                    ..Frame::ethernet(&p.bytes)
                };
                filter.matches(&head)
            })
            .map(|(i, _)| *i)
            .collect();
        kept += got.len();
        if got != want {
            report.push_str(&describe_difference(&expr, &want, &got, &packets));
        }
        checked += 1;
    }
    assert!(checked >= 150, "only {checked} expressions checked");
    assert!(
        kept >= 10 * checked,
        "only {kept} frames kept in {checked} runs"
    );
    // describe_difference speaks of tcpdump: here the evaluator stands for it.
    assert!(
        report.is_empty(),
        "the kernel differs from the evaluator:\n{report}"
    );
}
