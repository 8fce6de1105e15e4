//! Self-test of the end-to-end test support in `tests/common`: topologies come up, carry
//! traffic, and vanish afterwards, also when the test panics. Does not use netxray itself.

mod common;

use common::leftovers::{bpf_link_count, netns_names, our_netns, owner_pid};
use common::traffic::inet_checksum;
use common::*;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn assert_gone(names: &[String]) {
    assert!(!names.is_empty());
    let present = netns_names();
    for name in names {
        assert!(!present.contains(name), "namespace {name} still exists");
        assert!(!Path::new("/run/netns").join(name).exists());
    }
}

#[test]
fn linear_bridged_carries_icmp_udp_tcp_and_is_removed() {
    let Some(_serial) = e2e() else { return };
    let names;
    {
        let topo = LinearBridged::new();
        names = topo.netns_names();
        assert_eq!(names.len(), 3);
        for (name, short) in names.iter().zip(["a", "br", "b"]) {
            assert_eq!(owner_pid(name), Some(std::process::id()));
            assert!(name.ends_with(&format!("-{short}")), "{name}");
            assert!(Path::new("/run/netns").join(name).exists());
        }
        let inodes = [topo.a_inode(), topo.br_inode(), topo.b_inode()];
        assert!(inodes[0] != inodes[1] && inodes[1] != inodes[2] && inodes[0] != inodes[2]);
        let stat = common::netns::command_stdout(
            "stat",
            &["-L", "-c", "%i", &format!("/run/netns/{}", names[0])],
        );
        assert_eq!(stat.trim(), topo.a_inode().to_string());
        assert_eq!(topo.a().read_sysctl("net.ipv4.icmp_ratelimit"), "0");
        // Seen from a process in the namespace too (the host keeps its own value).
        let seen = topo.a().run(&["cat", "/proc/sys/net/ipv4/icmp_ratelimit"]);
        assert_eq!(seen.trim(), "0");
        assert_eq!(topo.b().read_sysctl("net.ipv6.icmp.ratelimit"), "0");
        assert_eq!(topo.br().read_sysctl("net.ipv6.conf.br0.disable_ipv6"), "1");
        // lo is 1 in every namespace; veths get their own (repeating) numbers.
        assert_eq!(topo.a().ifindex("lo"), 1);
        assert!(topo.b().ifindex(LinearBridged::B_IF) > 1);

        // ICMP echo both ways and both families.
        assert!(ping(topo.a(), topo.b_ip(false), 0x4e58, 1), "ping v4 A->B");
        assert!(ping(topo.a(), topo.b_ip(true), 0x4e58, 2), "ping v6 A->B");
        assert!(ping(topo.b(), topo.a_ip(false), 7, 3), "ping v4 B->A");
        assert!(ping(topo.b(), topo.a_ip(true), 7, 4), "ping v6 B->A");
        // Nobody has 198.18.0.99: no reply, and the helper returns in time.
        let t = Instant::now();
        let no_host = "198.18.0.99".parse().expect("address");
        assert!(!ping_with(
            topo.a(),
            no_host,
            1,
            1,
            8,
            Duration::from_millis(300)
        ));
        assert!(t.elapsed() < Duration::from_secs(2));

        // UDP to an open port, v4 and v6.
        for v6 in [false, true] {
            let dst = SocketAddr::new(topo.b_ip(v6), 5555);
            let rx = udp_receiver(topo.b(), dst);
            let from = udp_send(topo.a(), None, dst, b"hello netxray");
            let (data, seen_from) = common::traffic::udp_recv(&rx).expect("datagram arrives");
            assert_eq!(data, b"hello netxray");
            assert_eq!(seen_from, from);
            assert_eq!(from.ip(), topo.a_ip(v6));
        }
        // UDP to a closed port: sent, nothing to wait for.
        let src = SocketAddr::new(topo.a_ip(false), 40000);
        assert_eq!(udp_send(topo.a(), Some(src), topo.b_sock4(9), b"x"), src);

        // TCP echo, v4 and v6, more than a socket buffer's worth.
        for v6 in [false, true] {
            let server = TcpEchoServer::start(topo.b(), SocketAddr::new(topo.b_ip(v6), 0));
            let n = 1 << 20;
            let x = tcp_exchange(topo.a(), server.addr(), n).expect("tcp exchange");
            assert_eq!(x.echoed, n);
            assert_ne!(x.local_port(), 0);
            assert_eq!(x.local.ip(), topo.a_ip(v6));
            assert_eq!(server.accepted(), 1);
        }
        // TCP to a closed port: refused (RST), not a hang.
        let err = tcp_exchange(topo.a(), topo.b_sock6(9), 1).expect_err("closed port");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }
    assert_gone(&names);
    assert!(our_netns().is_empty(), "left behind: {:?}", our_netns());
}

#[test]
fn panic_inside_a_topology_test_still_cleans_up() {
    let Some(_serial) = e2e() else { return };
    let names = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let topo = LinearBridged::new();
        names.lock().expect("lock").extend(topo.netns_names());
        // A panic on a thread inside a namespace reaches the test, which unwinds.
        in_netns(topo.a(), || panic!("deliberate panic inside the namespace"));
    });
    assert!(result.is_err(), "the closure should have panicked");
    let names = names.into_inner().expect("lock");
    assert_eq!(names.len(), 3);
    assert_gone(&names);
}

#[test]
fn standalone_netns_with_veth_and_sysctl() {
    let Some(_serial) = e2e() else { return };
    let names;
    {
        let x = Netns::new("x");
        let y = Netns::new("y");
        names = vec![x.name().to_string(), y.name().to_string()];
        assert_ne!(owner_pid(x.name()), None);
        veth(&x, "x0", &y, "y0");
        x.addr("x0", "198.19.0.1/30");
        y.addr("y0", "198.19.0.2/30");
        x.disable_ipv6("x0");
        y.disable_ipv6("y0");
        x.up("x0");
        y.up("y0");
        x.wait_ready("x0");
        y.wait_ready("y0");
        assert_eq!(x.read_sysctl("net.ipv6.conf.x0.disable_ipv6"), "1");
        assert!(x.run(&["ip", "-br", "addr"]).contains("198.19.0.1/30"));
        assert!(ping(&x, "198.19.0.2".parse().expect("address"), 9, 9));
        // The host namespace never sees the interfaces.
        assert!(!common::netns::command_stdout("ip", &["-br", "link"]).contains("x0@"));
    }
    assert_gone(&names);
}

#[test]
fn namespaces_of_dead_test_processes_are_reaped() {
    let Some(_serial) = e2e() else { return };
    // A pid that just existed and is gone now stands for a killed test run.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait true");
    let name = format!("nxt{dead}-0-stale");
    common::netns::command_stdout("ip", &["netns", "add", &name]);
    let reaped = common::leftovers::reap_stale_netns();
    assert!(reaped.contains(&name), "{reaped:?}");
    assert_gone(&[name]);
}

#[test]
fn bpf_links_can_be_counted() {
    if !require_root() {
        return;
    }
    assert!(
        bpf_link_count().is_some(),
        "neither bpftool nor /proc gave a count"
    );
}

#[test]
fn icmp_checksum_matches_a_known_packet() {
    // Echo request id 1 seq 1, no payload: 08 00 f7 fd 00 01 00 01.
    let pkt = [8u8, 0, 0, 0, 0, 1, 0, 1];
    assert_eq!(inet_checksum(&pkt), 0xf7fd);
    let mut with_sum = pkt;
    with_sum[2..4].copy_from_slice(&0xf7fdu16.to_be_bytes());
    assert_eq!(inet_checksum(&with_sum), 0);
    assert_eq!(owner_pid("nxt123-4-a"), Some(123));
    assert_eq!(owner_pid("nxtmanual-a"), None);
}

// NetxrayRun, exercised with sh: `--ready-file PATH` lands in $1 and $2.

#[test]
fn run_waits_for_the_ready_file_and_stops_with_sigint() {
    let t = Instant::now();
    let run = NetxrayRun::new("sh")
        .args([
            "-c",
            r#"echo '{"event":"start"}'; echo started >&2; sleep 0.2; touch "$2"; exec sleep 5"#,
            "sh",
        ])
        .start()
        .expect("ready");
    assert!(run.ready_file().exists());
    assert!(t.elapsed() >= Duration::from_millis(200));
    let out = run.stop();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(!out.killed);
    assert_eq!(out.status.signal(), Some(libc::SIGINT));
    assert_eq!(out.lines(), vec![r#"{"event":"start"}"#]);
    assert_eq!(out.json()[0]["event"], "start");
    assert_eq!(out.stderr.trim(), "started");
}

#[test]
fn run_that_exits_before_ready_fails_with_its_stderr() {
    let t = Instant::now();
    let err = NetxrayRun::new("sh")
        .args(["-c", "echo 'error: no BTF' >&2; exit 3", "sh"])
        .start()
        .expect_err("must fail");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(err.contains("error: no BTF"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
}

#[test]
fn run_that_never_gets_ready_times_out() {
    let err = NetxrayRun::new("sh")
        .args(["-c", "exec sleep 10", "sh"])
        .ready_timeout(Duration::from_millis(200))
        .start()
        .expect_err("must time out");
    assert!(err.contains("not ready"), "{err}");
}

#[test]
fn run_that_ignores_sigint_is_killed() {
    let mut run = NetxrayRun::new("sh")
        .args(["-c", r#"trap '' INT; touch "$2"; exec sleep 10"#, "sh"])
        .start()
        .expect("ready");
    assert!(run.is_running());
    let t = Instant::now();
    let out = run.stop_with_timeout(Duration::from_millis(200));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(out.killed);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert!(!run.is_running());
}

#[test]
fn json_lines_parse_and_skip_blank_lines() {
    let v = parse_json_lines("{\"a\":1}\n\n{\"b\":[2]}\n");
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["b"][0], 2);
}
