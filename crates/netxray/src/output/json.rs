//! JSON lines for trace events, written by hand: at hundreds of thousands of
//! events a second the generic serializer was the largest cost of a full
//! trace (perf). The field list and order are those of `TraceEvent` (and of
//! docs/json.md); a test checks the output against serde_json's rendering of
//! the same event, which stays the reference.

use crate::model::event::TraceEvent;
use crate::model::fmt::{push_ip, push_u32};
use crate::model::value::{Name, SkbAddr};
use std::borrow::Cow;
use std::fmt::Write;
use std::net::IpAddr;

/// A JSON value for one field.
trait Field {
    fn put(&self, out: &mut String);
}

impl Field for u64 {
    fn put(&self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(*self));
    }
}

impl Field for u32 {
    fn put(&self, out: &mut String) {
        push_u32(out, *self);
    }
}

impl Field for u16 {
    fn put(&self, out: &mut String) {
        push_u32(out, (*self).into());
    }
}

impl Field for u8 {
    fn put(&self, out: &mut String) {
        push_u32(out, (*self).into());
    }
}

impl Field for i32 {
    fn put(&self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(*self));
    }
}

impl Field for bool {
    fn put(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl Field for str {
    fn put(&self, out: &mut String) {
        out.push('"');
        let bytes = self.as_bytes();
        if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            out.push_str(self);
            out.push('"');
            return;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            out.push_str(&self[start..i]);
            if esc.is_empty() {
                let _ = write!(out, "\\u{b:04x}");
            } else {
                out.push_str(esc);
            }
            start = i + 1;
        }
        out.push_str(&self[start..]);
        out.push('"');
    }
}

impl Field for Name {
    fn put(&self, out: &mut String) {
        self.as_str().put(out);
    }
}

impl Field for Cow<'static, str> {
    fn put(&self, out: &mut String) {
        (**self).put(out);
    }
}

impl Field for SkbAddr {
    fn put(&self, out: &mut String) {
        out.push('"');
        self.push_to(out);
        out.push('"');
    }
}

impl Field for IpAddr {
    fn put(&self, out: &mut String) {
        out.push('"');
        push_ip(out, *self);
        out.push('"');
    }
}

impl Field for String {
    fn put(&self, out: &mut String) {
        self.as_str().put(out);
    }
}

impl Field for &str {
    fn put(&self, out: &mut String) {
        (**self).put(out);
    }
}

impl<T: Field> Field for Option<T> {
    fn put(&self, out: &mut String) {
        match self {
            Some(v) => v.put(out),
            None => out.push_str("null"),
        }
    }
}

/// Append one event as a JSON object (no newline).
pub fn write_event(out: &mut String, e: &TraceEvent) {
    macro_rules! fields {
        ($first:ident $(, $name:ident)* $(,)?) => {
            out.push_str(concat!("{\"", stringify!($first), "\":"));
            e.$first.put(out);
            $(
                out.push_str(concat!(",\"", stringify!($name), "\":"));
                e.$name.put(out);
            )*
            out.push('}');
        };
    }
    fields!(
        ts_ns,
        hook,
        group,
        kind,
        skb,
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
        detail,
        source,
        linked_skb,
        linked_hook,
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
        for e in [sample(), TraceEvent::default()] {
            let mut s = String::new();
            write_event(&mut s, &e);
            let ours: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
            let reference = serde_json::to_value(&e).expect("serde");
            assert_eq!(ours, reference, "{s}");
            // Same field order too.
            assert_eq!(s, serde_json::to_string(&e).expect("serde"));
        }
    }
}
