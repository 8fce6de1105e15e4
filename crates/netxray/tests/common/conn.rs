//! TCP connections between the test namespaces for the `conn` tests: each
//! end's TCP_INFO read before either closes, known comms, closes from either
//! side or a reset, nft drop rules, a SYN timeout; and reading conn records.

use super::{in_netns, parse_json_lines, poll_until, LinearBridged, Netns, NetxrayRun};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

pub const CLIENT_COMM: &str = "nxt-client";
pub const SERVER_COMM: &str = "nxt-server";
pub const WAIT: Duration = Duration::from_secs(10);

/// The calling thread's comm (what the kernel reports as the task's name).
pub fn set_comm(name: &str) {
    let c = std::ffi::CString::new(name).expect("comm without NUL");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

pub fn tcp_info(s: &impl AsRawFd) -> libc::tcp_info {
    // SAFETY: tcp_info is plain old data; getsockopt fills at most len bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket fd and a buffer of len bytes.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info
}

/// Waits until everything this side sent is acknowledged (`syn`: the active
/// side's bytes_acked counts its SYN), then returns TCP_INFO.
pub fn settled(s: &TcpStream, sent: u64, syn: bool) -> libc::tcp_info {
    let want = sent + u64::from(syn);
    poll_until(WAIT, Duration::from_millis(5), || {
        let i = tcp_info(s);
        (i.tcpi_bytes_acked == want).then_some(i)
    })
    .unwrap_or_else(|| panic!("bytes_acked never reached {want}"))
}

pub fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

pub fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_add(seed)).collect()
}

/// How a test connection ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Close {
    ClientFirst,
    ServerFirst,
    /// The client resets it (SO_LINGER 0) once the server read everything.
    ClientReset,
}

/// What one side's socket said before it closed.
#[derive(Debug, Clone, Copy)]
pub struct SideInfo {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub acked: u64,
    pub received: u64,
    pub retrans: u32,
}

impl SideInfo {
    fn of(s: &TcpStream, i: &libc::tcp_info) -> Self {
        Self {
            local: s.local_addr().expect("local address"),
            peer: s.peer_addr().expect("peer address"),
            acked: i.tcpi_bytes_acked,
            received: i.tcpi_bytes_received,
            retrans: i.tcpi_total_retrans,
        }
    }
}

#[derive(Debug)]
pub struct Done {
    pub client: SideInfo,
    pub server: SideInfo,
    pub c2s: usize,
    pub s2c: usize,
    pub close: Close,
}

/// The server's part of one connection, on its own thread.
pub fn serve_one(
    listener: TcpListener,
    c2s: usize,
    s2c: usize,
    close: Close,
    read_all: mpsc::Sender<()>,
    infos_taken: &Barrier,
) -> SideInfo {
    set_comm(SERVER_COMM);
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut got = vec![0u8; c2s];
    s.read_exact(&mut got).expect("server reads the request");
    assert_eq!(got, payload(c2s, 1));
    let _ = read_all.send(());
    s.write_all(&payload(s2c, 2)).expect("server writes");
    let info = SideInfo::of(&s, &settled(&s, s2c as u64, false));
    // Both ends read TCP_INFO before either closes (no FIN counted yet).
    infos_taken.wait();
    match close {
        Close::ServerFirst => drop(s),
        Close::ClientFirst => {
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).expect("EOF from the client");
            assert!(rest.is_empty());
        }
        Close::ClientReset => {
            let mut b = [0u8; 1];
            let r = s.read(&mut b);
            assert!(
                matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
                "the server should see the reset: {r:?}"
            );
        }
    }
    info
}

/// One connection A -> B with `c2s` bytes up and `s2c` down (s2c = 0 with a
/// reset), closed as told; `before_data` runs once connected (nft rules).
pub fn connection(
    t: &LinearBridged,
    v6: bool,
    c2s: usize,
    s2c: usize,
    close: Close,
    before_data: impl FnOnce(u16) + Send,
    after_data: impl FnOnce(&TcpStream) + Send,
) -> Done {
    let listener =
        in_netns(t.b(), || TcpListener::bind(SocketAddr::new(t.b_ip(v6), 0))).expect("listen in B");
    let port = listener.local_addr().expect("port").port();
    let (tx, rx) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let server = std::thread::spawn(move || serve_one(listener, c2s, s2c, close, tx, &b2));
    before_data(port);
    let dst = SocketAddr::new(t.b_ip(v6), port);
    let client = in_netns(t.a(), move || {
        set_comm(CLIENT_COMM);
        let mut s = TcpStream::connect_timeout(&dst, WAIT).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(&payload(c2s, 1)).expect("client writes");
        after_data(&s);
        rx.recv_timeout(WAIT).expect("the server read everything");
        let mut got = vec![0u8; s2c];
        s.read_exact(&mut got).expect("client reads the reply");
        assert_eq!(got, payload(s2c, 2));
        let info = SideInfo::of(&s, &settled(&s, c2s as u64, true));
        barrier.wait();
        match close {
            Close::ClientFirst => drop(s),
            Close::ServerFirst => {
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).expect("EOF from the server");
                assert!(rest.is_empty());
            }
            Close::ClientReset => {
                set_linger_zero(&s);
                drop(s);
            }
        }
        info
    });
    let server = server
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    Done {
        client,
        server,
        c2s,
        s2c,
        close,
    }
}

pub fn nft(ns: &Netns, script: &str) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", script])
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn nft_dropped(ns: &Netns, table: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "nft",
            "list",
            "table",
            "inet",
            table,
        ])
        .output()
        .expect("run nft");
    let text = String::from_utf8_lossy(&out.stdout);
    let n = text
        .split("counter packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("no counter in:\n{text}"))
}

/// A connect() with TCP_SYNCNT=1 to a port whose SYNs B drops: ETIMEDOUT
/// after the SYN and one retransmission.
pub fn syn_timeout(t: &LinearBridged, dst: SocketAddr) {
    in_netns(t.a(), || {
        set_comm(CLIENT_COMM);
        let (family, len) = if dst.is_ipv6() {
            (libc::AF_INET6, std::mem::size_of::<libc::sockaddr_in6>())
        } else {
            (libc::AF_INET, std::mem::size_of::<libc::sockaddr_in>())
        };
        // SAFETY: plain socket calls on an fd we own and close.
        unsafe {
            let fd = libc::socket(family, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let one: libc::c_int = 1;
            let rc = libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_SYNCNT,
                (&one as *const libc::c_int).cast(),
                4,
            );
            assert_eq!(rc, 0);
            let mut storage: libc::sockaddr_storage = std::mem::zeroed();
            match dst {
                SocketAddr::V4(a) => {
                    let sin = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in);
                    sin.sin_family = libc::AF_INET as libc::sa_family_t;
                    sin.sin_port = a.port().to_be();
                    sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                }
                SocketAddr::V6(a) => {
                    let sin6 = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6);
                    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sin6.sin6_port = a.port().to_be();
                    sin6.sin6_addr.s6_addr = a.ip().octets();
                }
            }
            let rc = libc::connect(
                fd,
                &storage as *const _ as *const libc::sockaddr,
                len as u32,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            assert_eq!(rc, -1);
            assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT), "{err}");
        }
    });
}

pub fn conns(out: &str) -> Vec<Value> {
    parse_json_lines(out)
        .into_iter()
        .filter(|v| v["type"] == "conn")
        .collect()
}

pub fn find(records: &[Value], local: SocketAddr, remote: SocketAddr) -> Option<&Value> {
    records.iter().find(|v| {
        v["laddr"] == local.ip().to_string()
            && v["lport"] == local.port()
            && v["raddr"] == remote.ip().to_string()
            && v["rport"] == remote.port()
    })
}

pub fn check_side(v: &Value, me: &SideInfo, sent: usize, got: usize, active: bool, outcome: &str) {
    let what = format!("{} -> {}: {v}", me.local, me.peer);
    assert_eq!(
        v["direction"],
        if active { "active" } else { "passive" },
        "{what}"
    );
    assert_eq!(v["outcome"], outcome, "{what}");
    assert_eq!(v["tx_bytes"], sent as u64, "{what}");
    assert_eq!(v["rx_bytes"], got as u64, "{what}");
    // TCP_INFO read before close: bytes_acked counts the active side's SYN.
    assert_eq!(v["tx_bytes"], me.acked - u64::from(active), "{what}");
    assert_eq!(v["rx_bytes"], me.received, "{what}");
    assert_eq!(v["total_retrans"], me.retrans, "{what}");
    assert_eq!(v["pid"], std::process::id(), "{what}");
    assert_eq!(
        v["comm"],
        if active { CLIENT_COMM } else { SERVER_COMM },
        "{what}"
    );
    assert_eq!(
        v["owner_source"],
        if active { "connect" } else { "accept" },
        "{what}"
    );
    assert_eq!(v["established"], true, "{what}");
    assert_eq!(v["open_before"], false, "{what}");
    assert!(v["srtt_us"].as_u64().is_some(), "{what}");
    // Known on the side that sent the SYN only.
    assert_eq!(v["handshake_ns"].as_u64().is_some(), active, "{what}");
    assert!(v["duration_ns"].as_u64().unwrap_or(0) > 0, "{what}");
}

pub fn wait_for(run: &NetxrayRun, what: &str, pred: impl Fn(&[Value]) -> bool) {
    let ok = poll_until(WAIT, Duration::from_millis(20), || {
        pred(&conns(&run.stdout_so_far())).then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: not reported; so far:\n{}",
        run.stdout_so_far()
    );
}
