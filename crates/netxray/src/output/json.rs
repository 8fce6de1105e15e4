//! JSON lines for trace events, written by hand: at hundreds of thousands of
//! events a second the generic serializer was the largest cost of a full
//! trace (perf). The field list and order are those of `TraceEvent` (and of
//! docs/json.md); a test checks the output against serde_json's rendering of
//! the same event, which stays the reference. `trace --journey` writes its
//! objects with the same pieces ([`json_object!`]).

use crate::model::event::TraceEvent;
use crate::model::value::{Name, SkbAddr};
use std::borrow::Cow;
use std::net::IpAddr;

/// A JSON value for one field, appended to a byte buffer (always UTF-8:
/// only text and ASCII are written).
pub(crate) trait Field {
    fn put(&self, out: &mut Vec<u8>);
    /// `null` (an absent optional field): written with its key at once.
    fn is_null(&self) -> bool {
        false
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

impl Field for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, *self);
    }
}

impl Field for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, (*self).into());
    }
}

impl Field for u16 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, (*self).into());
    }
}

impl Field for u8 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, (*self).into());
    }
}

impl Field for i32 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl Field for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

/// Whether a byte must be escaped in a JSON string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

impl Field for str {
    fn put(&self, out: &mut Vec<u8>) {
        let bytes = self.as_bytes();
        // No early exit: the compiler vectorises this test.
        let plain = !bytes.iter().fold(false, |any, &b| any | needs_escape(b));
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        if plain {
            out.extend_from_slice(bytes);
            out.push(b'"');
            return;
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if esc.is_empty() {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(esc);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
        out.push(b'"');
    }
}

impl Field for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out);
    }
}

impl<T: Field + ?Sized> Field for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
    fn is_null(&self) -> bool {
        (**self).is_null()
    }
}

impl Field for Name {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out);
    }
}

impl Field for Cow<'static, str> {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
}

impl Field for SkbAddr {
    fn put(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 20];
        buf[0] = b'"';
        let n = self.format(&mut buf[1..]);
        buf[n + 1] = b'"';
        out.extend_from_slice(&buf[..n + 2]);
    }
}

impl Field for IpAddr {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            IpAddr::V4(a) => {
                // "255.255.255.255" at most: built on the stack, one copy.
                let mut buf = [0u8; 17];
                buf[0] = b'"';
                let mut n = 1;
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    if o >= 100 {
                        buf[n] = b'0' + o / 100;
                        n += 1;
                    }
                    if o >= 10 {
                        buf[n] = b'0' + o / 10 % 10;
                        n += 1;
                    }
                    buf[n] = b'0' + o % 10;
                    n += 1;
                }
                buf[n] = b'"';
                out.extend_from_slice(&buf[..n + 1]);
            }
            IpAddr::V6(_) => {
                let mut s = String::with_capacity(40);
                crate::model::fmt::push_ip(&mut s, *self);
                s.as_str().put(out);
            }
        }
    }
}

impl<T: Field> Field for [T] {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            s.put(out);
        }
        out.push(b']');
    }
}

impl<T: Field> Field for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_slice().put(out);
    }
}

/// Netfilter's conntrack view: rare enough for serde.
impl Field for crate::model::event::Conntrack {
    fn put(&self, out: &mut Vec<u8>) {
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.extend_from_slice(b"null");
        }
    }
}

impl<T: Field> Field for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.put(out),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn is_null(&self) -> bool {
        self.is_none()
    }
}

/// Append `$v`'s fields, in the order given, as a JSON object to the byte
/// buffer `$out` (each field's type implements [`Field`]; keys are the field
/// names, as serde's derive writes them).
macro_rules! json_object {
    ($out:expr, $v:expr; $first:ident $(, $name:ident)* $(,)?) => {{
        let out: &mut Vec<u8> = $out;
        let v = $v;
        out.extend_from_slice(concat!("{\"", stringify!($first), "\":").as_bytes());
        v.$first.put(out);
        $(
            if v.$name.is_null() {
                out.extend_from_slice(concat!(",\"", stringify!($name), "\":null").as_bytes());
            } else {
                out.extend_from_slice(concat!(",\"", stringify!($name), "\":").as_bytes());
                v.$name.put(out);
            }
        )*
        out.push(b'}');
    }};
}
pub(crate) use json_object;

/// Append one event as a JSON object (no newline).
pub fn write_event(out: &mut Vec<u8>, e: &TraceEvent) {
    // Room for the keys and the short values: one reallocation check here
    // rather than a growth in the middle of the line.
    out.reserve(1024 + e.summary.len());
    json_object!(out, e;
        ts_ns,
        hook,
        group,
        kind,
        skb,
        head,
        netns,
        netns_name,
        ifindex,
        ifname,
        len,
        cpu,
        pid,
        tid,
        comm,
        l3,
        proto,
        saddr,
        daddr,
        sport,
        dport,
        icmp_type,
        icmp_code,
        icmp_id,
        icmp_seq,
        tcp_flags,
        tcp_seq,
        tcp_ack,
        vlan,
        drop_reason,
        location,
        ret,
        nf_hook,
        ct,
        detail,
        source,
        linked_skb,
        linked_hook,
        followed,
        stack,
        truncated,
        summary,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TraceEvent {
        TraceEvent {
            ts_ns: 1_795_441_842_810_332_333,
            hook: "skb:kfree_skb",
            group: "life",
            kind: "packet",
            skb: Some(SkbAddr(0xffff888109afe200)),
            netns: Some(4026532246),
            netns_name: Some("pid 7 (we\"ird\\na\tme\u{1})".into()),
            ifindex: Some(2),
            ifname: Some("vb".into()),
            len: Some(47),
            cpu: 1,
            comm: Some("nétx".into()),
            l3: Some("ipv4"),
            proto: Some("udp".into()),
            saddr: Some("198.18.0.1".parse().expect("address")),
            daddr: Some("2001:db8::2".parse().expect("address")),
            sport: Some(35803),
            dport: Some(9),
            tcp_seq: Some(u32::MAX),
            drop_reason: Some("NO_SOCKET".into()),
            ret: Some(-22),
            source: Some("packet"),
            truncated: true,
            summary: "IP 198.18.0.1.35803 > 198.18.0.2.9: UDP, length 5".into(),
            ..Default::default()
        }
    }

    #[test]
    fn same_json_as_serde() {
        let mut more = Vec::new();
        for (i, a) in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::",
            "2001:db8::1",
        ]
        .into_iter()
        .enumerate()
        {
            more.push(TraceEvent {
                saddr: Some(a.parse().expect("address")),
                linked_skb: Some(SkbAddr(i as u64 * 0x1234)),
                linked_hook: Some("net:net_dev_queue"),
                summary: "ctl \u{1f}\r\n \" \\ end".into(),
                tcp_flags: Some(String::new()),
                ..sample()
            });
        }
        for e in [sample(), TraceEvent::default()].into_iter().chain(more) {
            let mut buf = Vec::new();
            write_event(&mut buf, &e);
            let s = String::from_utf8(buf).expect("UTF-8");
            let ours: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
            let reference = serde_json::to_value(&e).expect("serde");
            assert_eq!(ours, reference, "{s}");
            // Same field order too.
            assert_eq!(s, serde_json::to_string(&e).expect("serde"));
        }
    }
}
