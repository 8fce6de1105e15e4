//! Traffic generators: every socket is opened on a thread that entered the sending
//! namespace, and every wait has a timeout of a few seconds, so a test never hangs.
//! Destinations must be test addresses (198.18.0.0/15, 2001:db8::/32): anything else panics.

use super::netns::{in_netns, Netns};
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream,
    UdpSocket,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default wait for replies, connects, reads and writes.
pub const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `ip` is in 198.18.0.0/15 or 2001:db8::/32.
pub fn is_test_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 198 && (o[1] & 0xfe) == 18
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

/// Panics unless `ip` is in 198.18.0.0/15 or 2001:db8::/32.
pub fn assert_test_addr(ip: IpAddr) {
    assert!(
        is_test_addr(ip),
        "{ip} is not a test address (198.18.0.0/15, 2001:db8::/32)"
    );
}

// ---------------------------------------------------------------- ICMP echo

/// Sends one ICMP echo request (v4 or v6 by `dst`) from `ns` with 56 bytes of payload and
/// waits up to [`TRAFFIC_TIMEOUT`] for the matching reply. True if it came.
pub fn ping(ns: &Netns, dst: IpAddr, id: u16, seq: u16) -> bool {
    ping_with(ns, dst, id, seq, 56, TRAFFIC_TIMEOUT)
}

/// [`ping`] with a payload length and timeout. Uses a raw socket (root): the reply is
/// matched on source address, type, id and seq.
pub fn ping_with(
    ns: &Netns,
    dst: IpAddr,
    id: u16,
    seq: u16,
    payload_len: usize,
    timeout: Duration,
) -> bool {
    assert_test_addr(dst);
    in_netns(ns, || match dst {
        IpAddr::V4(d) => ping4(d, id, seq, payload_len, timeout),
        IpAddr::V6(d) => ping6(d, id, seq, payload_len, timeout),
    })
    .unwrap_or_else(|e| panic!("ping {dst} from {}: {e}", ns.name()))
}

fn echo_request(kind: u8, id: u16, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut pkt = vec![kind, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend((0..payload_len).map(|i| (i & 0xff) as u8));
    pkt
}

/// RFC 1071 internet checksum.
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ping4(
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
    payload_len: usize,
    timeout: Duration,
) -> io::Result<bool> {
    let sock = raw_socket(libc::AF_INET, libc::IPPROTO_ICMP)?;
    let mut pkt = echo_request(8, id, seq, payload_len);
    let csum = inet_checksum(&pkt);
    pkt[2..4].copy_from_slice(&csum.to_be_bytes());
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    send_to(&sock, &pkt, &sa)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while let Some(n) = recv_until(&sock, &mut buf, deadline)? {
        // A raw IPv4 socket hands us the IP header too.
        let ip = &buf[..n];
        let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
        if n < ihl + 8 || ip[12..16] != dst.octets() {
            continue;
        }
        let icmp = &ip[ihl..];
        if is_echo_reply(icmp, 0, id, seq) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn ping6(
    dst: Ipv6Addr,
    id: u16,
    seq: u16,
    payload_len: usize,
    timeout: Duration,
) -> io::Result<bool> {
    let sock = raw_socket(libc::AF_INET6, libc::IPPROTO_ICMPV6)?;
    // The kernel fills in the ICMPv6 checksum (pseudo-header included) on raw ICMPv6 sockets.
    let pkt = echo_request(128, id, seq, payload_len);
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = dst.octets();
    send_to(&sock, &pkt, &sa)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut from: libc::sockaddr_in6 = unsafe { zeroed() };
        let Some(n) = recv_from_until(&sock, &mut buf, &mut from, deadline)? else {
            return Ok(false);
        };
        // No IPv6 header on raw ICMPv6 sockets: the source comes from recvfrom.
        if from.sin6_addr.s6_addr == dst.octets() && is_echo_reply(&buf[..n], 129, id, seq) {
            return Ok(true);
        }
    }
}

fn is_echo_reply(icmp: &[u8], kind: u8, id: u16, seq: u16) -> bool {
    icmp.len() >= 8
        && icmp[0] == kind
        && icmp[1] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

fn raw_socket(family: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An AF_PACKET socket writing whole Ethernet frames, as given, out of one
/// interface (of the namespace of the thread that made it). Keep one for many
/// frames: closing an AF_PACKET socket waits for an RCU grace period.
/// Frames' IP addresses must be test addresses; the caller builds them.
pub struct FrameSender {
    sock: OwnedFd,
    ifindex: u32,
}

impl FrameSender {
    /// A sender on `ifindex` in the calling thread's namespace.
    pub fn new(ifindex: u32) -> io::Result<FrameSender> {
        Ok(FrameSender {
            sock: raw_socket(libc::AF_PACKET, 0)?,
            ifindex,
        })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        send_to(&self.sock, frame, &sa)
    }
}

/// Sends one whole Ethernet frame, as given, out of `ifname` in `ns` through an
/// AF_PACKET socket (how tagged frames get onto a veth without an 802.1Q module).
/// The frame's IP addresses must be test addresses; the caller builds it.
pub fn send_frame(ns: &Netns, ifname: &str, frame: &[u8]) {
    let ifindex = ns.ifindex(ifname);
    in_netns(ns, || FrameSender::new(ifindex)?.send(frame))
        .unwrap_or_else(|e| panic!("send a frame on {ifname} in {}: {e}", ns.name()))
}

/// An AF_PACKET socket receiving every frame on `ifname` in `ns`, as tcpdump
/// opens one: the kernel clones each packet for it. Closed when dropped.
pub fn packet_listener(ns: &Netns, ifname: &str) -> OwnedFd {
    let ifindex = ns.ifindex(ifname);
    in_netns(ns, || {
        let sock = raw_socket(libc::AF_PACKET, i32::from((libc::ETH_P_ALL as u16).to_be()))?;
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: sa is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    })
    .unwrap_or_else(|e| panic!("packet socket on {ifname} in {}: {e}", ns.name()))
}

/// Read and discard whatever a socket has queued (without waiting); returns
/// how many messages.
pub fn drain_socket(sock: &OwnedFd) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        // SAFETY: buf is valid for its length.
        let rc = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            return n;
        }
        n += 1;
    }
}

/// A UDP/IPv4 datagram in an Ethernet frame with one 802.1Q tag, checksummed.
pub fn tagged_udp4_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vid: u16,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    assert_test_addr(IpAddr::V4(*src.ip()));
    assert_test_addr(IpAddr::V4(*dst.ip()));
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    let csum = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn send_to<A>(sock: &OwnedFd, pkt: &[u8], addr: &A) -> io::Result<()> {
    // SAFETY: pkt and addr are valid for the lengths given; A is a sockaddr_* struct.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (addr as *const A).cast(),
            size_of::<A>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `sock` is readable or `deadline` passes. True if readable.
fn wait_readable(sock: &OwnedFd, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc > 0 {
            return Ok(true);
        }
    }
}

fn recv_until(sock: &OwnedFd, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
    if !wait_readable(sock, deadline)? {
        return Ok(None);
    }
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(n as usize))
}

fn recv_from_until(
    sock: &OwnedFd,
    buf: &mut [u8],
    from: &mut libc::sockaddr_in6,
    deadline: Instant,
) -> io::Result<Option<usize>> {
    if !wait_readable(sock, deadline)? {
        return Ok(None);
    }
    let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: buf and from are valid for the lengths given.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (from as *mut libc::sockaddr_in6).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(n as usize))
}

// ---------------------------------------------------------------- UDP

/// A UDP socket bound to `bind` inside `ns` (read timeout [`TRAFFIC_TIMEOUT`]). The socket
/// stays in `ns`; use it from any thread, e.g. with [`udp_recv`].
pub fn udp_receiver(ns: &Netns, bind: SocketAddr) -> UdpSocket {
    assert_test_addr(bind.ip());
    in_netns(ns, || {
        let sock = UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(TRAFFIC_TIMEOUT))?;
        Ok::<_, io::Error>(sock)
    })
    .unwrap_or_else(|e| panic!("udp bind {bind} in {}: {e}", ns.name()))
}

/// One datagram from `sock`, or `None` after its read timeout.
pub fn udp_recv(sock: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => {
            buf.truncate(n);
            Some((buf, from))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("udp recv: {e}"),
    }
}

/// Sends one datagram from `ns` (from `src`, or an ephemeral port) to `dst`, open port or
/// closed, and returns the sender's local address (concrete IP and port: the flow's source).
/// Does not wait for anything.
pub fn udp_send(
    ns: &Netns,
    src: Option<SocketAddr>,
    dst: SocketAddr,
    payload: &[u8],
) -> SocketAddr {
    assert_test_addr(dst.ip());
    let bind = src.unwrap_or_else(|| match dst {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    });
    in_netns(ns, || {
        let sock = UdpSocket::bind(bind)?;
        sock.set_write_timeout(Some(TRAFFIC_TIMEOUT))?;
        // Connected, so local_addr() names the source address the route chose. A closed
        // port's ICMP error only marks the socket; this send itself succeeds.
        sock.connect(dst)?;
        sock.send(payload)?;
        sock.local_addr()
    })
    .unwrap_or_else(|e| panic!("udp send {dst} from {}: {e}", ns.name()))
}

// ---------------------------------------------------------------- TCP

/// A TCP echo server listening inside a namespace. It serves connections one after another
/// on a background thread, echoing everything until the client shuts down its side, then
/// closes. Stopped and joined when dropped.
pub struct TcpEchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl TcpEchoServer {
    /// Listens on `addr` inside `ns` (port 0 picks one: see [`TcpEchoServer::addr`]).
    pub fn start(ns: &Netns, addr: SocketAddr) -> TcpEchoServer {
        assert_test_addr(addr.ip());
        let listener = in_netns(ns, || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok::<_, io::Error>(l)
        })
        .unwrap_or_else(|e| panic!("tcp listen {addr} in {}: {e}", ns.name()));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("listener address: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        // The listener already lives in `ns`, so this thread need not enter it.
        let thread = std::thread::Builder::new()
            .name(format!("tcp-echo:{addr}"))
            .spawn(move || serve(listener, &stop2, &accepted2))
            .unwrap_or_else(|e| panic!("spawn tcp echo thread: {e}"));
        TcpEchoServer {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool, accepted: &AtomicUsize) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                accepted.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = echo(conn) {
                    eprintln!("tcp echo server: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                eprintln!("tcp echo server accept: {e}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn echo(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(TRAFFIC_TIMEOUT))?;
    conn.set_write_timeout(Some(TRAFFIC_TIMEOUT))?;
    let mut buf = [0u8; 16384];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // client shut down its side; dropping closes ours
        }
        conn.write_all(&buf[..n])?;
    }
}

/// What a client saw in [`tcp_exchange`].
#[derive(Debug, Clone, Copy)]
pub struct TcpExchange {
    /// The client's address (its ephemeral port identifies the flow).
    pub local: SocketAddr,
    /// Bytes read back before the server closed.
    pub echoed: usize,
}

impl TcpExchange {
    pub fn local_port(&self) -> u16 {
        self.local.port()
    }
}

/// Connects from `ns` to `dst`, sends `nbytes`, shuts down its sending side and reads until
/// the server closes. Every step times out after [`TRAFFIC_TIMEOUT`]. Errors are returned
/// (a closed port gives `ConnectionRefused`).
pub fn tcp_exchange(ns: &Netns, dst: SocketAddr, nbytes: usize) -> io::Result<TcpExchange> {
    assert_test_addr(dst.ip());
    in_netns(ns, || {
        let mut stream = TcpStream::connect_timeout(&dst, TRAFFIC_TIMEOUT)?;
        stream.set_read_timeout(Some(TRAFFIC_TIMEOUT))?;
        stream.set_write_timeout(Some(TRAFFIC_TIMEOUT))?;
        let local = stream.local_addr()?;
        let mut writer = stream.try_clone()?;
        // Write and read at once: an echo larger than the socket buffers would otherwise
        // block both sides.
        std::thread::scope(|s| {
            let w = s.spawn(move || -> io::Result<()> {
                let chunk: Vec<u8> = (0..16384).map(|i| (i % 251) as u8).collect();
                let mut left = nbytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    writer.write_all(&chunk[..n])?;
                    left -= n;
                }
                writer.shutdown(Shutdown::Write)
            });
            let mut echoed = 0;
            let mut buf = [0u8; 16384];
            let read = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => echoed += n,
                    Err(e) => break Err(e),
                }
            };
            let wrote = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            wrote?;
            read?;
            Ok(TcpExchange { local, echoed })
        })
    })
}
