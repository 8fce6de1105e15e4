//! End to end: `netxray http` with a test server of our own (known
//! endpoints: 200, 404, a slow one, chunked, a large body, POST) and a
//! client that makes a known set of requests: several on one keep-alive
//! connection, two pipelined in one write, one written in two pieces, IPv4
//! and IPv6; then real ones: curl against python3's http.server, and
//! against nginx serving a file with sendfile.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const SLOW: Duration = Duration::from_millis(200);
const BIG: usize = 300_000;

/// The response to one request line's path.
fn respond(path: &str) -> Vec<u8> {
    match path.split('?').next().unwrap_or("") {
        "/ok" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        "/slow" => {
            std::thread::sleep(SLOW);
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec()
        }
        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(),
        "/big" => {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            r.resize(r.len() + BIG, b'x');
            r
        }
        "/echo" => b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec(),
    }
}

/// A keep-alive server: requests parsed from the stream in order (a body
/// only with Content-Length), each answered with one write.
fn serve(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { return };
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                while let Some(end) = find(&buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let body = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + body {
                        break;
                    }
                    buf.drain(..end + 4 + body);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    if s.write_all(&respond(&path)).is_err() {
                        return;
                    }
                }
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Read one response (Content-Length or chunked) from the stream.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, usize) {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let total = if head.contains("Transfer-Encoding: chunked") {
                find(&buf[end..], b"0\r\n\r\n").map(|i| end + i + 5)
            } else {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                (buf.len() >= end + 4 + len).then_some(end + 4 + len)
            };
            if let Some(total) = total {
                buf.drain(..total);
                return (status, total);
            }
        }
        let n = s.read(&mut chunk).expect("read response");
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: web.test\r\n\r\n")
}

/// The known requests on one keep-alive connection to `to`: (method, path,
/// request bytes, status, response bytes), in order.
fn client(to: SocketAddr) -> Vec<(String, String, usize, u16, usize)> {
    let mut s = TcpStream::connect(to).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::new();
    let mut done = Vec::new();
    let mut one = |s: &mut TcpStream, buf: &mut Vec<u8>, method: &str, path: &str, req: &[u8]| {
        let (status, n) = read_response(s, buf);
        done.push((method.to_string(), path.to_string(), req.len(), status, n));
    };
    for path in ["/ok", "/missing", "/slow", "/chunked", "/big"] {
        let req = get(path);
        s.write_all(req.as_bytes()).expect("write");
        one(&mut s, &mut buf, "GET", path, req.as_bytes());
    }
    // Two requests pipelined in one write, answered in order.
    let (a, b) = (get("/ok?p=1"), get("/missing?p=2"));
    s.write_all(format!("{a}{b}").as_bytes()).expect("write");
    one(&mut s, &mut buf, "GET", "/ok?p=1", a.as_bytes());
    one(&mut s, &mut buf, "GET", "/missing?p=2", b.as_bytes());
    // A request written in two pieces, split inside a header name.
    let req = get("/ok?split=1");
    let cut = req.find("Ho").unwrap_or(10) + 2;
    s.write_all(&req.as_bytes()[..cut]).expect("write");
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&req.as_bytes()[cut..]).expect("write");
    one(&mut s, &mut buf, "GET", "/ok?split=1", req.as_bytes());
    // A POST with a body.
    let req = "POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\n\r\nabc";
    s.write_all(req.as_bytes()).expect("write");
    one(&mut s, &mut buf, "POST", "/echo", req.as_bytes());
    done
}

fn process_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// On 6.3+ the socket hooks carry the data; the system-call returns
/// otherwise, as on 5.10 and 6.1 (also run here, with the socket hooks
/// hidden).
#[test]
fn every_exchange_with_status_sizes_latency_and_both_processes() {
    exchanges_on("");
}

#[test]
fn every_exchange_with_status_sizes_latency_and_both_processes_from_the_system_call_returns() {
    exchanges_on("sock_send_length,sock_recv_length");
}

fn exchanges_on(hide: &str) {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let v4 = t.b_sock4(8080);
    let v6 = t.b_sock6(8080);
    for addr in [v4, v6] {
        let l = in_netns(t.b(), move || TcpListener::bind(addr).expect("bind"));
        std::thread::spawn(move || serve(l));
    }
    let run = NetxrayRun::new(netxray_bin())
        .env("NETXRAY_HIDE_TRACEPOINTS", hide)
        .args(["http", "-o", "json", "port", "8080"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let mut want = in_netns(t.a(), move || client(v4));
    let v6_done = in_netns(t.a(), move || {
        let mut s = TcpStream::connect(v6).expect("connect v6");
        let req = get("/ok?v6=1");
        s.write_all(req.as_bytes()).expect("write");
        let (status, n) = read_response(&mut s, &mut Vec::new());
        (
            "GET".to_string(),
            "/ok?v6=1".to_string(),
            req.len(),
            status,
            n,
        )
    });
    want.push(v6_done);
    let got = poll_until(WAIT, Duration::from_millis(100), || {
        let n = parse_json_lines(&run.stdout_so_far())
            .iter()
            .filter(|r| r["type"] == "http")
            .count();
        (n >= want.len()).then_some(())
    });
    let out = run.stop();
    // Which hooks carried the data (stderr's first line says).
    assert_eq!(
        out.stderr.contains("from the socket hooks"),
        hide.is_empty(),
        "{}",
        out.stderr
    );
    let recs: Vec<Value> = parse_json_lines(&out.stdout)
        .into_iter()
        .filter(|r| r["type"] == "http")
        .collect();
    assert!(got.is_some(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(recs.len(), want.len(), "{}", out.stdout);
    let me = std::process::id();
    let comm = process_comm();
    for (r, (method, path, req_b, status, resp_b)) in recs.iter().zip(&want) {
        assert_eq!(r["method"], method.as_str(), "{r}");
        assert_eq!(r["path"], path.as_str(), "{r}");
        assert_eq!(r["status"], *status, "{r}");
        assert_eq!(r["request_bytes"], *req_b, "{r}");
        assert_eq!(r["response_bytes"], *resp_b, "{r}");
        assert_eq!(r["response_complete"], true, "{r}");
        assert_eq!(r["host"], "web.test", "{r}");
        for side in ["client_process", "server_process"] {
            assert_eq!(r[side]["pid"], me, "{side}: {r}");
            assert_eq!(r[side]["comm"], comm.as_str(), "{side}: {r}");
        }
        assert_eq!(r["client_process"]["netns_name"], t.a().name());
        assert_eq!(r["server_process"]["netns_name"], t.b().name());
    }
    assert_eq!(
        recs[0]["client"]
            .as_str()
            .map(|c| c.starts_with("198.18.0.1:")),
        Some(true)
    );
    assert_eq!(recs[0]["server"], v4.to_string());
    assert_eq!(recs[9]["server"], v6.to_string());
    // The slow endpoint's latency: at least the sleep, within 500 ms more.
    let slow = recs[2]["latency_ns"].as_u64().unwrap_or(0);
    let min = SLOW.as_nanos() as u64;
    assert!(slow >= min && slow < min + 500_000_000, "{slow} ns");
    for r in &recs {
        assert!(r["client_process"]["latency_ns"].as_u64().is_some(), "{r}");
        assert!(r["server_process"]["latency_ns"].as_u64().is_some(), "{r}");
    }
    assert!(out.stderr.contains(" 0 lost"), "{}", out.stderr);
}

#[test]
fn curl_and_python_http_server_and_a_request_nobody_answers() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let dir = std::env::temp_dir().join(format!("nxt-www-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("index.html"), "hello\n").expect("write");
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            t.b().name(),
            "/usr/bin/python3",
            "-m",
            "http.server",
        ])
        .args(["--bind", "198.18.0.2", "8000", "--directory"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 http.server");
    let up = poll_until(WAIT, Duration::from_millis(50), || {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                t.a().name(),
                "curl",
                "-s",
                "-o",
                "/dev/null",
            ])
            .arg("http://198.18.0.2:8000/")
            .status()
            .ok()?;
        out.success().then_some(())
    });
    assert!(up.is_some(), "http.server did not answer");
    // A server that reads and never answers.
    let quiet = in_netns(t.b(), || {
        TcpListener::bind("198.18.0.2:8001").expect("bind")
    });
    let hold = std::thread::spawn(move || {
        let (mut s, _) = quiet.accept().expect("accept");
        let mut b = [0u8; 1024];
        let _ = s.read(&mut b);
        std::thread::sleep(Duration::from_secs(3));
    });
    let run = NetxrayRun::new(netxray_bin())
        .args(["http", "-o", "json", "--timeout", "1", "--comm", "curl"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let curl = |urls: &[&str]| -> u32 {
        let mut c = Command::new("ip")
            .args([
                "netns",
                "exec",
                t.a().name(),
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "2",
            ])
            .args(urls)
            .spawn()
            .expect("curl");
        let pid = c.id();
        let _ = c.wait();
        pid
    };
    // Two requests (http.server speaks HTTP/1.0: a connection each).
    let pid = curl(&["http://198.18.0.2:8000/", "http://198.18.0.2:8000/nothere"]);
    let quiet_pid = curl(&["http://198.18.0.2:8001/wait"]);
    let got = poll_until(WAIT, Duration::from_millis(100), || {
        let n = parse_json_lines(&run.stdout_so_far())
            .iter()
            .filter(|r| r["type"] == "http")
            .count();
        (n >= 3).then_some(())
    });
    let out = run.stop();
    let _ = server.kill();
    let _ = server.wait();
    let _ = hold.join();
    let _ = std::fs::remove_dir_all(&dir);
    let recs: Vec<Value> = parse_json_lines(&out.stdout)
        .into_iter()
        .filter(|r| r["type"] == "http")
        .collect();
    assert!(got.is_some(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(recs.len(), 3, "{}", out.stdout);
    assert_eq!(recs[0]["path"], "/");
    assert_eq!(recs[0]["status"], 200);
    assert_eq!(recs[1]["path"], "/nothere");
    assert_eq!(recs[1]["status"], 404);
    for r in &recs[..2] {
        assert_eq!(r["client_process"]["pid"], pid, "{r}");
        assert_eq!(r["client_process"]["comm"], "curl", "{r}");
        // --comm curl: the server's side is not looked at.
        assert!(r["server_process"].is_null(), "{r}");
    }
    assert_eq!(recs[2]["path"], "/wait");
    assert_eq!(recs[2]["outcome"], "no_response");
    assert_eq!(recs[2]["client_process"]["pid"], quiet_pid);
    // And at the end, per endpoint.
    let sum: Vec<Value> = parse_json_lines(&out.stdout)
        .into_iter()
        .filter(|r| r["type"] == "http_summary")
        .collect();
    assert!(sum
        .iter()
        .any(|r| r["endpoint"] == "GET /nothere" && r["errors"] == 1));
}

/// nginx (Debian's nginx-light) serving a file with sendfile: the body
/// never passes through user memory; its length still frames the stream,
/// so the keep-alive connection's next exchanges come out right.
#[test]
fn nginx_with_sendfile_and_curl_on_one_keep_alive_connection() {
    let Some(_serial) = e2e() else { return };
    let Some(nginx) = ["/usr/sbin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("nginx not installed: skipped");
        return;
    };
    let t = LinearBridged::new();
    let dir = std::env::temp_dir().join(format!("nxt-nginx-{}", std::process::id()));
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    std::fs::write(www.join("page.html"), "x".repeat(5000)).expect("write page");
    let d = dir.display();
    let conf = format!(
        "worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; sendfile on; tcp_nopush off;\n\
           client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
           uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           server {{ listen 198.18.0.2:8088; root {d}/www; }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write conf");
    let mut server = Command::new("ip")
        .args(["netns", "exec", t.b().name(), nginx, "-c"])
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let up = poll_until(WAIT, Duration::from_millis(50), || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                t.a().name(),
                "curl",
                "-s",
                "-o",
                "/dev/null",
            ])
            .arg("http://198.18.0.2:8088/page.html")
            .status()
            .ok()?
            .success()
            .then_some(())
    });
    assert!(up.is_some(), "nginx did not answer");
    let run = NetxrayRun::new(netxray_bin())
        .args(["http", "-o", "json", "port", "8088"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    // One curl, three URLs: one keep-alive connection. curl says each
    // response's header and body sizes.
    let out = Command::new("ip")
        .args(["netns", "exec", t.a().name(), "curl", "-s"])
        .args(["-w", "%{size_header} %{size_download} %{num_connects}\\n"])
        .args(["-o", "/dev/null", "http://198.18.0.2:8088/page.html"])
        .args(["-o", "/dev/null", "http://198.18.0.2:8088/missing"])
        .args(["-o", "/dev/null", "http://198.18.0.2:8088/page.html"])
        .output()
        .expect("curl");
    let sizes: Vec<(u64, u64, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let v: Vec<u64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect();
    assert_eq!(sizes.len(), 3, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        sizes.iter().map(|s| s.2).sum::<u64>(),
        1,
        "one connection: {sizes:?}"
    );
    let got = poll_until(WAIT, Duration::from_millis(100), || {
        let n = parse_json_lines(&run.stdout_so_far())
            .iter()
            .filter(|r| r["type"] == "http")
            .count();
        (n >= 3).then_some(())
    });
    let res = run.stop();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let recs: Vec<Value> = parse_json_lines(&res.stdout)
        .into_iter()
        .filter(|r| r["type"] == "http")
        .collect();
    assert!(got.is_some(), "{}\n{}", res.stdout, res.stderr);
    assert_eq!(recs.len(), 3, "{}", res.stdout);
    let want = [("/page.html", 200), ("/missing", 404), ("/page.html", 200)];
    for (r, ((path, status), (head, body, _))) in recs.iter().zip(want.iter().zip(&sizes)) {
        assert_eq!(r["path"], *path, "{r}");
        assert_eq!(r["status"], *status, "{r}");
        assert_eq!(r["response_bytes"], head + body, "{r}");
        assert_eq!(r["response_complete"], true, "{r}");
        assert_eq!(r["client_process"]["comm"], "curl", "{r}");
        // The server's side too: its stream stays framed although the
        // file's bytes went by sendfile.
        assert_eq!(r["server_process"]["comm"], "nginx", "{r}");
        assert!(r["server_process"]["latency_ns"].as_u64().is_some(), "{r}");
    }
    assert_eq!(
        recs[0]["client_process"]["sk"], recs[2]["client_process"]["sk"],
        "one connection"
    );
}

/// A server already blocked in read(2) when netxray starts (an idle
/// keep-alive connection): the read's entry was never seen; its arguments
/// come from the registers saved at the syscall's entry, so the next
/// request still shows on the server's side.
#[test]
fn a_read_blocked_before_the_start_is_still_followed() {
    let Some(_serial) = e2e() else { return };
    let t = LinearBridged::new();
    let addr = t.b_sock4(8090);
    let l = in_netns(t.b(), move || TcpListener::bind(addr).expect("bind"));
    std::thread::spawn(move || serve(l));
    let mut s = in_netns(t.a(), move || TcpStream::connect(addr).expect("connect"));
    let mut buf = Vec::new();
    s.write_all(get("/ok?before=1").as_bytes()).expect("write");
    let _ = read_response(&mut s, &mut buf);
    // The server's thread is now in read(2), waiting for the next request.
    let run = NetxrayRun::new(netxray_bin())
        .args(["http", "-o", "json", "port", "8090"])
        .start()
        .unwrap_or_else(|e| panic!("netxray did not start: {e}"));
    let req = get("/ok?after=1");
    s.write_all(req.as_bytes()).expect("write");
    let (status, n) = read_response(&mut s, &mut buf);
    assert_eq!(status, 200);
    let got = poll_until(WAIT, Duration::from_millis(100), || {
        parse_json_lines(&run.stdout_so_far())
            .into_iter()
            .find(|r| r["type"] == "http" && !r["server_process"].is_null())
    });
    let out = run.stop();
    let r = got.unwrap_or_else(|| panic!("{}\n{}", out.stdout, out.stderr));
    assert_eq!(r["path"], "/ok?after=1", "{r}");
    assert_eq!(r["request_bytes"], req.len(), "{r}");
    assert_eq!(r["response_bytes"], n, "{r}");
    assert!(!r["client_process"].is_null(), "{r}");
}
