//! Big filters: runs of host, net and port alternatives are looked up in a
//! set (an LPM trie in the kernel) instead of compared one by one. Their
//! verdicts must still be tcpdump's, in user space and in the kernel (the TC
//! twin of the tracing programs, run with BPF_PROG_TEST_RUN), on frames
//! chosen to be in and out of the sets, and cut short at every length, where
//! the order of loads decides (a load past the end rejects the packet).

mod common;

use common::filter_corpus::TempDir;
use common::pcap::*;
use common::tcpdump::{tcpdump_matches_with, tcpdump_version, Optimizer};
use netxray::kernel::filter_twin::FilterTwin;
use netxray::model::filter::ebpf::MAX_INSNS;
use netxray::model::filter::{Filter, Frame};
use std::net::{Ipv4Addr, Ipv6Addr};

const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];

fn v4(k: u32) -> Ipv4Addr {
    // 198.18.0.0/15, spread over both halves.
    Ipv4Addr::from(0xc612_0000 + k * 37 % 0x2_0000)
}

fn v6(k: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, (k % 7) as u16, 0, 0, 0, k as u16)
}

/// One frame, and the same frame cut at lengths around its addresses and ports.
fn with_cuts(frame: Vec<u8>, cuts: std::ops::Range<usize>, out: &mut Vec<Vec<u8>>) {
    for cut in cuts {
        if cut >= 14 && cut < frame.len() {
            out.push(frame[..cut].to_vec());
        }
    }
    out.push(frame);
}

fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for k in 0..48u32 {
        let (src, dst) = (v4(k * 20), v4(k * 20 + 7));
        let tcp = Tcp {
            sport: 1000 + k as u16,
            dport: 2000 + (k * 7 % 50) as u16,
            ..Tcp::default()
        };
        let ip = Ipv4::new(src, dst);
        let frame = ether(MAC_A, MAC_B, &[], 0x0800, &ip.build(&tcp.build(&[])));
        if k % 8 == 0 {
            // Cut inside the addresses and inside the ports.
            with_cuts(frame, 26..40, &mut out);
        } else {
            out.push(frame);
        }
        let mut udp_ip = Ipv4::new(dst, src);
        udp_ip.proto = 17;
        // Options: the ports move (4 * IHL).
        if k % 3 == 0 {
            udp_ip.options = vec![1, 1, 1, 1];
        }
        let u = udp(3000 + k as u16, 2000 + k as u16, b"x");
        out.push(ether(MAC_B, MAC_A, &[], 0x0800, &udp_ip.build(&u)));
        // A later fragment: no ports.
        let mut frag = Ipv4::new(src, dst);
        frag.proto = 17;
        frag.frag_offset = 8;
        if k % 12 == 0 {
            out.push(ether(MAC_A, MAC_B, &[], 0x0800, &frag.build(&u)));
        }
        if k % 4 == 0 {
            out.push(ether(
                MAC_A,
                MAC_B,
                &[],
                0x0806,
                &arp(1, MAC_A, src, [0; 6], dst),
            ));
            out.push(ether(
                MAC_A,
                MAC_B,
                &[VlanTag::dot1q(10)],
                0x0800,
                &ip.build(&tcp.build(&[])),
            ));
        }
        let ip6 = Ipv6::new(v6(k), v6(k + 100), 6);
        let frame6 = ether(MAC_A, MAC_B, &[], 0x86dd, &ip6.build(&tcp.build(&[])));
        if k % 8 == 1 {
            with_cuts(frame6, 22..62, &mut out);
        } else {
            out.push(frame6);
        }
    }
    out
}

fn alts(keyword: &str, values: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = values.into_iter().collect();
    format!("{keyword} ({})", v.join(" or "))
}

fn expressions() -> Vec<String> {
    let hosts = |n: u32, step: u32| (0..n).map(move |k| v4(k * step).to_string());
    let thousand = alts("host", hosts(1000, 3));
    let ports = |n: u16| (0..n).map(|p| (2000 + 3 * p).to_string());
    let hosts6 = |n: u32| (0..n).map(|k| v6(k * 3).to_string());
    vec![
        thousand.clone(),
        alts("src host", hosts(1000, 3)),
        alts("dst host", hosts(300, 7)),
        alts("ip host", hosts(40, 20)),
        alts("arp host", hosts(40, 20)),
        // Below the set threshold: compares.
        alts("host", hosts(7, 20)),
        // Nets and hosts in one run; a mask with holes stays a compare.
        format!(
            "{} or host {} or net 198.0.0.0 mask 255.0.255.0",
            (0..12)
                .map(|k| {
                    let len = 20 + k % 12;
                    let net = Ipv4Addr::from(u32::from(v4(k * 160)) & (u32::MAX << (32 - len)));
                    format!("net {net}/{len}")
                })
                .collect::<Vec<_>>()
                .join(" or "),
            v4(45)
        ),
        alts("port", ports(20)),
        alts("tcp dst port", ports(20)),
        alts("udp src port", (0..30).map(|p| (3000 + 2 * p).to_string())),
        format!(
            "portrange 2001-2009 or port 2030 or {} or portrange 1010-1020",
            (0..9)
                .map(|p| format!("port {}", 2040 + p))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        alts("host", hosts6(40)),
        alts("src net", (0..10).map(|k| format!("2001:db8:0:{k}::/64"))),
        format!("not {thousand}"),
        format!(
            "{} and {}",
            alts("host", hosts(100, 2)),
            alts("port", ports(10))
        ),
        format!("vlan and {}", alts("host", hosts(100, 2))),
        // Two runs of different kinds in one chain, and a primitive between.
        format!(
            "{} or icmp or {}",
            alts("host", hosts(10, 20)),
            alts("port", ports(10))
        ),
    ]
}

#[test]
fn a_thousand_hosts_cost_what_ten_cost() {
    let hosts = |n: u32| {
        let f = Filter::parse(&alts("host", (0..n).map(|k| v4(k).to_string()))).unwrap();
        f.to_ebpf().unwrap().unwrap()
    };
    let (ten, thousand) = (hosts(10), hosts(1000));
    assert_eq!(ten.insns.len(), thousand.insns.len());
    assert!(thousand.insns.len() < 300, "{}", thousand.insns.len());
    assert_eq!(thousand.sets.len(), 1000);
    let few = hosts(5);
    assert!(few.sets.is_empty(), "5 alternatives are compared");
}

#[test]
fn a_filter_too_large_names_its_largest_part() {
    let text = (0..150)
        .map(|k| format!("tcp[{k}:4] = {k}"))
        .chain(["(tcp[tcp[12] & 0xf0] + udp[ip[0] & 0x0f] = ip[2:2])".to_string()])
        .collect::<Vec<_>>()
        .join(" or ");
    let e = Filter::parse(&text).unwrap().to_ebpf().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("at most {MAX_INSNS}")), "{msg}");
    assert!(msg.contains("the largest (marked)"), "{msg}");
    // The caret is under the last, largest primitive.
    assert!(e.pos > text.find("(tcp[tcp").unwrap(), "{msg}");
}

#[test]
fn sets_agree_with_tcpdump_in_user_space_and_in_the_kernel() {
    let Some(version) = tcpdump_version() else {
        eprintln!("SKIPPED: no tcpdump to compare with");
        return;
    };
    let frames = frames();
    let dir = TempDir::new();
    let pcap = dir.path().join("sets.pcap");
    write_pcap(
        &pcap,
        frames.iter().map(|f| PcapRecord {
            data: f,
            wire_len: f.len() as u32,
        }),
    )
    .unwrap();
    let kernel = common::require_root();
    let btf = kernel.then(|| aya::Btf::from_sys_fs().expect("kernel BTF"));
    let mut report = String::new();
    for expr in expressions() {
        let filter = Filter::parse(&expr).unwrap_or_else(|e| panic!("{e}"));
        filter.to_ebpf().unwrap_or_else(|e| panic!("{e}"));
        // tcpdump's answer, with libpcap's optimizer and without (`-O`):
        // like the corpus tests, either is right (the optimizer drops loads
        // of zero-masked words, which changes what a cut frame gives). The
        // optimizer takes a minute on a thousand alternatives: -O only there.
        let short = &expr[..expr.len().min(100)];
        let answer = |o| {
            tcpdump_matches_with(&pcap, &expr, o)
                .unwrap_or_else(|e| panic!("{version} refused `{short}`: {e}"))
        };
        let mut wants = vec![answer(Optimizer::Off)];
        if expr.matches(" or ").count() < 200 {
            wants.push(answer(Optimizer::On));
        }
        let verdicts = |judge: &dyn Fn(&[u8]) -> bool| -> Vec<usize> {
            (0..frames.len()).filter(|&i| judge(&frames[i])).collect()
        };
        let user = verdicts(&|f| filter.matches(&Frame::ethernet(f)));
        if !wants.contains(&user) {
            report.push_str(&format!(
                "`{short}`: user space keeps {user:?}, tcpdump {wants:?}\n"
            ));
        }
        let want = &wants[0];
        assert!(
            !want.is_empty() && want.len() < frames.len(),
            "`{short}` should keep some frames and not all ({})",
            want.len()
        );
        let Some(btf) = &btf else { continue };
        let twin = FilterTwin::load_with(btf, &filter)
            .unwrap_or_else(|e| panic!("`{short}`: the kernel refused it: {e}"));
        let kernel = verdicts(&|f| twin.matches(f, true).expect("test run"));
        if kernel != user {
            report.push_str(&format!(
                "`{short}`: the kernel keeps {kernel:?}, user space {user:?}\n"
            ));
        }
        for (i, f) in frames.iter().enumerate() {
            // Without the Ethernet header, as at IP-level hooks.
            let et = u16::from_be_bytes([f[12], f[13]]);
            let whole = match et {
                0x0800 => f.len() >= 34,
                0x86dd => f.len() >= 54,
                _ => f.len() > 14,
            };
            if whole {
                let l3 = Frame {
                    data: &f[14..],
                    l2: false,
                    ethertype: et,
                    len: f.len() as u32 - 14,
                };
                let (u, k) = (
                    filter.matches(&l3),
                    twin.matches(f, false).expect("test run"),
                );
                if u != k {
                    report.push_str(&format!(
                        "`{short}` without L2 on frame {i}: kernel {k}, user space {u}\n"
                    ));
                }
            }
        }
    }
    assert!(report.is_empty(), "{report}");
}
