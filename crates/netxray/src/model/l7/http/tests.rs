use super::*;

/// A call whose bytes were all captured.
fn whole(data: &[u8], ts: u64) -> Segment<'_> {
    Segment {
        len: data.len() as u64,
        head: data,
        tail: &[],
        ts,
    }
}

/// A call captured as the kernel does: the first 1024 bytes, and the last
/// 32 when those are not everything.
fn captured(data: &[u8], ts: u64) -> Segment<'_> {
    let head = &data[..data.len().min(1024)];
    let tail = if data.len() > 1024 {
        &data[data.len() - 32..]
    } else {
        &[]
    };
    Segment {
        len: data.len() as u64,
        head,
        tail,
        ts,
    }
}

/// Feeds whole calls (ts 1, 2, ...) and gathers the messages.
fn run(s: &mut Stream, parts: &[&[u8]]) -> Vec<Message> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        out.extend(s.feed(&whole(p, i as u64 + 1)));
    }
    out
}

fn requests(parts: &[&[u8]]) -> (Stream, Vec<Message>) {
    let mut s = Stream::new(Kind::Request);
    let out = run(&mut s, parts);
    (s, out)
}

fn responses(parts: &[&[u8]]) -> (Stream, Vec<Message>) {
    let mut s = Stream::new(Kind::Response);
    let out = run(&mut s, parts);
    (s, out)
}

fn req(m: &Message) -> &RequestHead {
    match &m.head {
        Head::Request(r) => r,
        Head::Response(_) => panic!("a response: {m:?}"),
    }
}

fn resp(m: &Message) -> &ResponseHead {
    match &m.head {
        Head::Response(r) => r,
        Head::Request(_) => panic!("a request: {m:?}"),
    }
}

fn statuses(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().map(|m| resp(m).status).collect()
}

fn paths(msgs: &[Message]) -> Vec<&str> {
    msgs.iter().map(|m| req(m).path.as_str()).collect()
}

const GET: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";

#[test]
fn simple_get() {
    let (s, msgs) = requests(&[GET]);
    assert_eq!(s.is_http(), Some(true));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let r = req(m);
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/index.html?q=1");
    assert!(!r.path_truncated);
    assert_eq!(r.version, 1);
    assert_eq!(r.host.as_deref(), Some("example.com"));
    assert_eq!(m.head_len, GET.len() as u64);
    assert_eq!(m.body_len, 0);
    assert_eq!((m.first_ts, m.last_ts), (1, 1));
    assert!(m.complete);
    assert!(!m.head_partial);
    assert!(!m.conn_close);
    assert_eq!(m.framing, Framing::None);
}

#[test]
fn keep_alive_three_requests_in_three_writes() {
    let mut s = Stream::new(Kind::Request);
    for (ts, path) in [(10, "/a"), (20, "/b"), (30, "/c")] {
        let text = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        let msgs = s.feed(&whole(text.as_bytes(), ts));
        assert_eq!(msgs.len(), 1, "{path}");
        assert_eq!(req(&msgs[0]).path, path);
        assert_eq!((msgs[0].first_ts, msgs[0].last_ts), (ts, ts));
        assert!(msgs[0].complete);
    }
}

#[test]
fn two_pipelined_requests_in_one_write() {
    let (_, msgs) =
        requests(&[b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n"]);
    assert_eq!(paths(&msgs), ["/1", "/2"]);
    assert_eq!(req(&msgs[1]).method, "HEAD");
    assert!(msgs.iter().all(|m| m.complete && m.first_ts == 1));
    // A body, then the next request, in one write.
    let (_, msgs) =
        requests(&[b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /g HTTP/1.1\r\n\r\n"]);
    assert_eq!(paths(&msgs), ["/p", "/g"]);
    assert_eq!(msgs[0].body_len, 3);
}

#[test]
fn request_head_split_over_two_writes() {
    let (s, msgs) = requests(&[b"GET /x HTTP/1.1\r\nHo", b"st: a.example\r\n\r\n"]);
    assert_eq!(s.is_http(), Some(true));
    assert_eq!(msgs.len(), 1);
    assert_eq!(req(&msgs[0]).host.as_deref(), Some("a.example"));
    assert_eq!((msgs[0].first_ts, msgs[0].last_ts), (1, 2));
    assert_eq!(msgs[0].head_len, 36);
}

#[test]
fn request_head_split_over_three_writes_inside_a_header_name() {
    let parts: [&[u8]; 3] = [
        b"GET /y HTTP/1.1\r\nUser-Ag",
        b"ent: curl\r\nHo",
        b"st: b\r\n\r",
    ];
    let mut s = Stream::new(Kind::Request);
    for (i, p) in parts.iter().enumerate() {
        assert!(s.feed(&whole(p, i as u64 + 1)).is_empty());
    }
    // The last byte of the empty line comes alone.
    let msgs = s.feed(&whole(b"\n", 4));
    assert_eq!(msgs.len(), 1);
    assert_eq!(req(&msgs[0]).host.as_deref(), Some("b"));
    assert_eq!((msgs[0].first_ts, msgs[0].last_ts), (1, 4));
}

#[test]
fn start_line_split_keeps_http_undecided() {
    let mut s = Stream::new(Kind::Request);
    assert!(s.feed(&whole(b"GE", 1)).is_empty());
    assert_eq!(s.is_http(), None);
    assert!(s.feed(&whole(b"T / HTTP/1.1\r\n", 2)).is_empty());
    assert_eq!(s.is_http(), Some(true));
    assert_eq!(s.feed(&whole(b"\r\n", 3)).len(), 1);
}

#[test]
fn post_with_content_length_body_split_over_writes() {
    let (_, msgs) = requests(&[
        b"POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234",
        b"567",
        b"89",
    ]);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(req(m).method, "POST");
    assert_eq!(m.framing, Framing::Length(10));
    assert_eq!(m.body_len, 10);
    assert_eq!((m.first_ts, m.last_ts), (1, 3));
    assert!(m.complete);
}

#[test]
fn response_with_content_length() {
    let (s, msgs) = responses(&[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        b"loHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    ]);
    assert_eq!(s.is_http(), Some(true));
    assert_eq!(statuses(&msgs), [200, 404]);
    assert_eq!(resp(&msgs[0]).reason, "OK");
    assert_eq!(resp(&msgs[1]).reason, "Not Found");
    assert_eq!(msgs[0].body_len, 5);
    assert_eq!((msgs[0].first_ts, msgs[0].last_ts), (1, 2));
    assert_eq!((msgs[1].first_ts, msgs[1].last_ts), (2, 2));
    assert!(msgs.iter().all(|m| m.complete));
}

#[test]
fn response_404_with_body() {
    let body = "<h1>no</h1>";
    let text = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (_, msgs) = responses(&[text.as_bytes()]);
    assert_eq!(statuses(&msgs), [404]);
    assert_eq!(msgs[0].body_len, body.len() as u64);
}

#[test]
fn response_to_head_has_no_body() {
    let mut s = Stream::new(Kind::Response);
    s.expect_head_request(true);
    s.expect_head_request(false);
    let msgs = s.feed(&whole(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        1,
    ));
    assert_eq!(statuses(&msgs), [200, 200]);
    assert_eq!(msgs[0].framing, Framing::None);
    assert_eq!(msgs[0].body_len, 0);
    assert_eq!(msgs[1].framing, Framing::Length(2));
    assert_eq!(msgs[1].body_len, 2);
}

#[test]
fn no_body_for_204_304_and_1xx() {
    let mut s = Stream::new(Kind::Response);
    // 204, 304, then the 200 after the 100 answers a HEAD: interim
    // responses use no entry.
    for is_head in [false, false, true] {
        s.expect_head_request(is_head);
    }
    let msgs = run(
        &mut s,
        &[
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
        ],
    );
    assert_eq!(statuses(&msgs), [204, 304, 100, 200]);
    assert!(msgs.iter().all(|m| m.body_len == 0 && m.complete));
}

#[test]
fn status_line_without_reason() {
    let (_, msgs) = responses(&[b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"]);
    assert_eq!(statuses(&msgs), [200]);
    assert_eq!(resp(&msgs[0]).reason, "");
}

const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn chunked_response_fully_captured() {
    let body: &[u8] = b"5\r\nhello\r\n6;name=v\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n";
    let mut stream: Vec<u8> = CHUNKED_HEAD.to_vec();
    stream.extend_from_slice(body);
    stream.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    // Cut everywhere: every split into two calls gives the same messages.
    for cut in 1..stream.len() {
        let (_, msgs) = responses(&[&stream[..cut], &stream[cut..]]);
        assert_eq!(statuses(&msgs), [200, 204], "cut at {cut}");
        assert_eq!(msgs[0].framing, Framing::Chunked);
        assert_eq!(msgs[0].body_len, body.len() as u64, "cut at {cut}");
        assert!(msgs[0].complete);
    }
    // And one byte per call.
    let parts: Vec<&[u8]> = stream.chunks(1).collect();
    let (_, msgs) = responses(&parts);
    assert_eq!(statuses(&msgs), [200, 204]);
    assert_eq!(msgs[0].body_len, body.len() as u64);
}

/// A chunked body of `n` chunks of 100 bytes, and its last chunk.
fn chunks(n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..n {
        b.extend_from_slice(b"64\r\n");
        b.extend_from_slice(&[b'x'; 100]);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"0\r\n\r\n");
    b
}

#[test]
fn chunked_big_call_ends_by_its_tail() {
    // 943 chunks of 100 bytes, one of 31 (37 with its framing), the last
    // chunk: 100000 bytes in one call, of which 1024 + 32 are captured.
    let mut body = chunks(943);
    body.truncate(body.len() - 5);
    body.extend_from_slice(b"1f\r\n");
    body.extend_from_slice(&[b'y'; 31]);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(body.len(), 100_000);
    let mut s = Stream::new(Kind::Response);
    assert!(s.feed(&whole(CHUNKED_HEAD, 1)).is_empty());
    let msgs = s.feed(&captured(&body, 2));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.body_len, 100_000);
    assert_eq!((m.first_ts, m.last_ts), (1, 2));
    assert!(m.complete);
    // The next response is found.
    let msgs = s.feed(&whole(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3));
    assert_eq!(statuses(&msgs), [200]);
}

#[test]
fn chunked_big_call_with_trailers_in_its_tail() {
    let mut body = chunks(1000);
    body.truncate(50_000);
    body.extend_from_slice(b"\r\n0\r\nX: 1\r\n\r\n");
    let mut s = Stream::new(Kind::Response);
    s.feed(&whole(CHUNKED_HEAD, 1));
    let msgs = s.feed(&captured(&body, 2));
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, body.len() as u64);
}

#[test]
fn chunked_lost_then_last_chunk_alone() {
    let mut s = Stream::new(Kind::Response);
    s.feed(&whole(CHUNKED_HEAD, 1));
    let mut body = chunks(500);
    body.truncate(40_000); // ends inside a chunk
    assert!(s.feed(&captured(&body, 2)).is_empty());
    assert!(s.feed(&captured(&chunks(300)[..20_000], 3)).is_empty());
    // The rest of the chunk, then the last chunk in a call of its own.
    assert!(s.feed(&whole(b"xxxx\r\n", 4)).is_empty());
    let msgs = s.feed(&whole(b"0\r\n\r\n", 5));
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, 40_000 + 20_000 + 6 + 5);
    assert_eq!(msgs[0].last_ts, 5);
}

#[test]
fn chunked_lost_then_last_chunk_over_three_calls() {
    let mut s = Stream::new(Kind::Response);
    s.feed(&whole(CHUNKED_HEAD, 1));
    assert!(s.feed(&captured(&chunks(500)[..40_000], 2)).is_empty());
    for (ts, part) in [(3, &b"xx\r"[..]), (4, b"\n0"), (5, b"\r\n")] {
        assert!(s.feed(&whole(part, ts)).is_empty());
    }
    let msgs = s.feed(&whole(b"\r\n", 6));
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, 40_000 + 3 + 2 + 2 + 2);
}

#[test]
fn chunked_lost_ends_incomplete_at_the_next_response() {
    let mut s = Stream::new(Kind::Response);
    s.feed(&whole(CHUNKED_HEAD, 1));
    assert!(s.feed(&captured(&chunks(500)[..40_000], 2)).is_empty());
    let msgs = s.feed(&whole(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3));
    assert_eq!(statuses(&msgs), [200, 200]);
    assert!(!msgs[0].complete);
    assert_eq!(msgs[0].body_len, 40_000);
    assert_eq!(msgs[0].last_ts, 2);
    assert!(msgs[1].complete);
}

#[test]
fn chunked_one_chunk_through_uncaptured_bytes_stays_exact() {
    let n = 100_000usize;
    let mut body = format!("{n:x}\r\n").into_bytes();
    body.resize(body.len() + n, b'y');
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    body.extend_from_slice(b"HTTP/1.1 200 OK\r\n"); // the next head begins in the tail
    let mut s = Stream::new(Kind::Response);
    s.feed(&whole(CHUNKED_HEAD, 1));
    let msgs = s.feed(&captured(&body, 2));
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, body.len() as u64 - 17);
    let msgs = s.feed(&whole(b"Content-Length: 0\r\n\r\n", 3));
    assert_eq!(statuses(&msgs), [200]);
    assert_eq!((msgs[0].first_ts, msgs[0].last_ts), (2, 3));
}

#[test]
fn http10_response_until_close() {
    let mut s = Stream::new(Kind::Response);
    let msgs = run(
        &mut s,
        &[
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
            b" world",
        ],
    );
    assert!(msgs.is_empty());
    let m = s.close(9).expect("the body ends at the close");
    assert_eq!(resp(&m).version, 0);
    assert_eq!(m.framing, Framing::UntilClose);
    assert_eq!(m.body_len, 11);
    assert!(m.complete);
    assert!(m.conn_close);
    assert_eq!((m.first_ts, m.last_ts), (1, 2));
    assert!(s.close(10).is_none());
}

#[test]
fn close_inside_a_body_or_a_head() {
    let (mut s, msgs) = requests(&[b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"]);
    assert!(msgs.is_empty());
    let m = s.close(5).expect("a body in progress");
    assert!(!m.complete);
    assert_eq!(m.body_len, 3);
    let (mut s, _) = requests(&[b"GET /cut HTTP/1.1\r\nHost: h\r\nAcc"]);
    let m = s.close(5).expect("a head in progress");
    assert!(m.head_partial && !m.complete);
    assert_eq!(req(&m).path, "/cut");
    assert_eq!(req(&m).host.as_deref(), Some("h"));
    // Nothing HTTP yet: nothing reported.
    let (mut s, _) = requests(&[b"GET /cu"]);
    assert!(s.close(5).is_none());
}

const CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a, 0x2b, 0x11, 0x00,
];

#[test]
fn tls_is_not_http() {
    for kind in [Kind::Request, Kind::Response] {
        let mut s = Stream::new(kind);
        assert!(s.feed(&whole(CLIENT_HELLO, 1)).is_empty());
        assert_eq!(s.is_http(), Some(false));
        // Ignored from then on, even what would look like HTTP.
        assert!(s.feed(&whole(GET, 2)).is_empty());
        assert!(s.feed(&whole(b"HTTP/1.1 200 OK\r\n\r\n", 3)).is_empty());
        s.expect_head_request(true);
        assert!(s.close(4).is_none());
        assert_eq!(s.is_http(), Some(false));
    }
}

#[test]
fn random_binary_is_not_http() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = vec![0u8; 4096];
    for b in &mut bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for kind in [Kind::Request, Kind::Response] {
        let mut s = Stream::new(kind);
        assert!(s.feed(&captured(&bytes, 1)).is_empty());
        assert_eq!(s.is_http(), Some(false));
    }
}

#[test]
fn other_protocols_are_not_http() {
    let others: [&[u8]; 6] = [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"get / http/1.1\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"220 smtp.example ESMTP\r\n",
    ];
    for bytes in others {
        let (s, msgs) = requests(&[bytes]);
        assert_eq!(
            s.is_http(),
            Some(false),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert!(msgs.is_empty());
    }
    // A request is not a response.
    let (s, msgs) = responses(&[GET]);
    assert_eq!(s.is_http(), Some(false));
    assert!(msgs.is_empty());
}

#[test]
fn next_request_in_uncaptured_bytes_resyncs() {
    // A write of 6000 bytes: a POST of 5000 body bytes, then a GET that
    // starts past the captured head: that GET is lost, the next is found.
    let mut write = b"POST /up HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec();
    let post_len = write.len() + 5000;
    write.resize(post_len, b'z');
    let lost = b"GET /lost HTTP/1.1\r\n\r\n";
    write.extend_from_slice(lost);
    write.resize(6000, b'\r');
    let mut s = Stream::new(Kind::Request);
    let msgs = s.feed(&captured(&write, 1));
    assert_eq!(paths(&msgs), ["/up"]);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, 5000);
    assert!(s.feed(&whole(b"zzzz", 2)).is_empty()); // skipped
    let msgs = s.feed(&whole(b"GET /found HTTP/1.1\r\n\r\n", 3));
    assert_eq!(paths(&msgs), ["/found"]);
}

#[test]
fn resync_wants_a_standard_method() {
    let mut s = Stream::new(Kind::Request);
    s.feed(&whole(
        b"PROPFIND /a HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        1,
    ));
    assert_eq!(s.is_http(), Some(true));
    // Resynchronising: a call beginning inside a method is no head, nor is
    // a method outside the standard ones.
    assert!(s.feed(&whole(b"ET /x HTTP/1.1\r\n\r\n", 2)).is_empty());
    assert!(s.feed(&whole(b"MKCOL /x HTTP/1.1\r\n\r\n", 3)).is_empty());
    assert_eq!(
        paths(&s.feed(&whole(b"DELETE /y HTTP/1.1\r\n\r\n", 4))),
        ["/y"]
    );
}

#[test]
fn head_cut_by_the_capture() {
    let mut write = b"GET /page HTTP/1.1\r\nHost: site\r\nCookie: ".to_vec();
    write.resize(3000, b'c');
    write.extend_from_slice(b"\r\nX-Late: 1\r\n\r\n");
    let mut s = Stream::new(Kind::Request);
    let msgs = s.feed(&captured(&write, 1));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.head_partial && !m.complete);
    assert_eq!(m.head_len, write.len() as u64);
    assert_eq!(req(m).path, "/page");
    assert_eq!(req(m).host.as_deref(), Some("site"));
    let msgs = s.feed(&whole(GET, 2));
    assert_eq!(paths(&msgs), ["/index.html?q=1"]);
    assert!(msgs[0].complete);
}

#[test]
fn start_line_cut_by_the_capture() {
    let mut write = b"GET /".to_vec();
    write.resize(2000, b'p');
    write.extend_from_slice(b" HTTP/1.0\r\n\r\n");
    let (s, msgs) = {
        let mut s = Stream::new(Kind::Request);
        let m = s.feed(&captured(&write, 1));
        (s, m)
    };
    assert_eq!(s.is_http(), Some(true));
    let r = req(&msgs[0]);
    assert_eq!(r.path.len(), PATH_MAX);
    assert!(r.path_truncated);
    assert_eq!(r.version, 1, "not seen: taken as 1");
    assert_eq!(r.host, None);
}

#[test]
fn head_longer_than_the_bound() {
    let mut text = b"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    text.resize(HEAD_MAX + 100, b'b');
    text.extend_from_slice(b"\r\n\r\n");
    let mut s = Stream::new(Kind::Request);
    let mut msgs = Vec::new();
    for (i, part) in text.chunks(1000).enumerate() {
        msgs.extend(s.feed(&whole(part, i as u64)));
    }
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].head_partial && !msgs[0].complete);
    assert_eq!(req(&msgs[0]).host.as_deref(), Some("h"));
    // The rest of that head is skipped; the next request is found.
    assert_eq!(paths(&s.feed(&whole(GET, 99))), ["/index.html?q=1"]);
}

#[test]
fn long_path_is_truncated() {
    let path = format!("/{}", "a".repeat(400));
    let text = format!("GET {path} HTTP/1.1\r\n\r\n");
    let (_, msgs) = requests(&[text.as_bytes()]);
    let r = req(&msgs[0]);
    assert_eq!(r.path, path[..PATH_MAX]);
    assert!(r.path_truncated);
    assert!(msgs[0].complete);
}

#[test]
fn utf8_path_is_cut_at_a_character() {
    let path = format!("/{}", "é".repeat(200));
    let text = format!("GET {path} HTTP/1.1\r\n\r\n");
    let (_, msgs) = requests(&[text.as_bytes()]);
    let r = req(&msgs[0]);
    assert!(r.path.len() <= PATH_MAX && r.path_truncated);
    assert!(path.starts_with(&r.path));
}

#[test]
fn empty_lines_before_a_request_are_skipped() {
    let (_, msgs) = requests(&[
        b"POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n",
        b"\r\nGET /b HTTP/1.1\r\n\r\n",
    ]);
    assert_eq!(paths(&msgs), ["/a", "/b"]);
    assert_eq!(msgs[1].head_len, 19);
}

#[test]
fn header_names_are_case_insensitive() {
    let (_, msgs) = requests(&[
        b"PUT /x HTTP/1.1\r\nHOST:  h.example  \r\ncontent-LENGTH: 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n",
    ]);
    assert_eq!(paths(&msgs), ["/x", "/"]);
    assert_eq!(req(&msgs[0]).host.as_deref(), Some("h.example"));
    assert_eq!(msgs[0].body_len, 2);
}

#[test]
fn chunked_beats_content_length() {
    let (_, msgs) = requests(&[
        b"POST /c HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        b"GET /n HTTP/1.1\r\n\r\n",
    ]);
    assert_eq!(paths(&msgs), ["/c", "/n"]);
    assert_eq!(msgs[0].framing, Framing::Chunked);
    assert_eq!(msgs[0].body_len, 12);
}

#[test]
fn response_with_other_transfer_coding_runs_until_close() {
    let (mut s, msgs) = responses(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzzz"]);
    assert!(msgs.is_empty());
    let m = s.close(2).expect("until close");
    assert_eq!(m.framing, Framing::UntilClose);
    assert_eq!(m.body_len, 4);
}

#[test]
fn invalid_content_length_resyncs() {
    let (_, msgs) = requests(&[
        b"POST /bad HTTP/1.1\r\nContent-Length: 12x\r\n\r\nbody bytes",
        b"GET /next HTTP/1.1\r\n\r\n",
    ]);
    assert_eq!(paths(&msgs), ["/bad", "/next"]);
    assert!(!msgs[0].complete);
    assert!(msgs[1].complete);
    // Equal values in a list are one length; different ones are not.
    let (_, msgs) = requests(&[b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nok"]);
    assert_eq!(msgs[0].framing, Framing::Length(2));
    let (_, msgs) =
        requests(&[b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"]);
    assert!(!msgs[0].complete);
}

#[test]
fn malformed_chunks_fall_back_to_the_tail() {
    let (_, msgs) = responses(&[
        CHUNKED_HEAD,
        b"zz\r\nnot chunked\r\n",
        b"more\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ]);
    assert_eq!(statuses(&msgs), [200, 200]);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, 17 + 11);
}

#[test]
fn bare_line_feeds() {
    let (_, msgs) = requests(&[b"GET /lf HTTP/1.1\nHost: h\n\nGET /2 HTTP/1.0\n\n"]);
    assert_eq!(paths(&msgs), ["/lf", "/2"]);
    assert_eq!(req(&msgs[0]).host.as_deref(), Some("h"));
    let (_, msgs) = responses(&[b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\nx\n0\n\n"]);
    assert_eq!(msgs[0].body_len, 7);
    assert!(msgs[0].complete);
}

#[test]
fn connection_close_and_keep_alive() {
    let (_, msgs) = requests(&[
        b"GET /1 HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /2 HTTP/1.0\r\n\r\n",
        b"GET /3 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        b"GET /4 HTTP/1.1\r\n\r\n",
    ]);
    let close: Vec<bool> = msgs.iter().map(|m| m.conn_close).collect();
    assert_eq!(close, [true, true, false, false]);
    assert_eq!(req(&msgs[1]).version, 0);
}

#[test]
fn methods() {
    for method in [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "PROPFIND", "M-SEARCH",
    ] {
        let text = format!("{method} / HTTP/1.1\r\n\r\n");
        let (_, msgs) = requests(&[text.as_bytes()]);
        assert_eq!(req(&msgs[0]).method, method);
    }
    let (_, msgs) =
        requests(&[b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"]);
    assert_eq!(req(&msgs[0]).path, "example.com:443");
    let long = format!("{} / HTTP/1.1\r\n\r\n", "X".repeat(METHOD_MAX + 1));
    let (s, _) = requests(&[long.as_bytes()]);
    assert_eq!(s.is_http(), Some(false));
}

#[test]
fn body_ending_at_the_end_of_the_captured_head_resyncs() {
    // The body ends exactly where the capture does: the next head starts
    // in uncaptured bytes.
    let mut write = b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n".to_vec();
    let n = 1024 - write.len();
    let text = format!("POST / HTTP/1.1\r\nContent-Length: {n}\r\n\r\n");
    write = text.into_bytes();
    write.resize(1024, b'a');
    write.extend_from_slice(b"GET /in-the-gap HTTP/1.1\r\n\r\n");
    write.resize(2000, b' ');
    let mut s = Stream::new(Kind::Request);
    let msgs = s.feed(&captured(&write, 1));
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].complete);
    assert_eq!(paths(&s.feed(&whole(GET, 2))), ["/index.html?q=1"]);
}

#[test]
fn tail_overlapping_the_head() {
    // 1040 bytes: head 1024, tail the last 32 (16 of them also in head).
    let mut body = chunks(9);
    body.truncate(body.len() - 5);
    body.extend_from_slice(b"1c\r\n");
    body.extend_from_slice(&[b'p'; 28]);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut all = CHUNKED_HEAD.to_vec();
    all.extend_from_slice(&body);
    assert_eq!(all.len(), 1040);
    let mut s = Stream::new(Kind::Response);
    let msgs = s.feed(&captured(&all, 1));
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].complete);
    assert_eq!(msgs[0].body_len, body.len() as u64);
}

#[test]
fn head_queue_is_bounded() {
    let mut s = Stream::new(Kind::Response);
    for _ in 0..PENDING_MAX * 4 {
        s.expect_head_request(true);
    }
    assert_eq!(s.pending.len(), PENDING_MAX);
}

#[test]
fn segment_parts_longer_than_len_are_clamped() {
    let mut s = Stream::new(Kind::Request);
    let seg = Segment {
        len: 20,
        head: b"GET / HTTP/1.1\r\n\r\nGET /not-sent HTTP/1.1\r\n\r\n",
        tail: b"GET /not-sent HTTP/1.1\r\n\r\n",
        ts: 1,
    };
    let msgs = s.feed(&seg);
    assert_eq!(paths(&msgs), ["/"]);
    assert!(s
        .feed(&Segment {
            len: 0,
            head: b"GET",
            tail: b"",
            ts: 2
        })
        .is_empty());
}
