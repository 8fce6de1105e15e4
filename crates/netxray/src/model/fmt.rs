//! Fast text for the per-event path: addresses and numbers written straight
//! into a String (std's `Display` for `Ipv4Addr` goes through padding
//! machinery and costs several times more, which shows at 300k events/s).

use std::fmt::Write;
use std::net::IpAddr;

/// Append a decimal number.
pub fn push_u32(out: &mut String, v: u32) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Every octet as text followed by a dot, with its length (dot included).
static OCTETS: [(u8, [u8; 4]); 256] = {
    let mut t = [(0u8, [0u8; 4]); 256];
    let mut i = 0;
    while i < 256 {
        let o = i as u8;
        t[i] = if o >= 100 {
            (4, [b'0' + o / 100, b'0' + o / 10 % 10, b'0' + o % 10, b'.'])
        } else if o >= 10 {
            (3, [b'0' + o / 10, b'0' + o % 10, b'.', 0])
        } else {
            (2, [b'0' + o, b'.', 0, 0])
        };
        i += 1;
    }
    t
};

/// Append an address as `198.18.0.1` or `2001:db8::1`.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            // Each octet's digits from a table into a buffer, one append
            // (itoa per octet and a push per dot cost ~250 instructions an
            // address).
            let mut buf = [0u8; 16 + 3];
            let mut n = 0;
            for o in a.octets() {
                let (len, digits) = OCTETS[usize::from(o)];
                buf[n..n + 4].copy_from_slice(&digits);
                n += usize::from(len);
            }
            // The last octet's dot is not part of the address.
            let text = &buf[..n - 1];
            // Only ASCII digits and dots were written.
            out.push_str(std::str::from_utf8(text).unwrap_or_default());
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

pub fn ip_string(ip: IpAddr) -> String {
    let mut s = String::with_capacity(16);
    push_ip(&mut s, ip);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_as_std() {
        for ip in [
            "0.0.0.0",
            "198.18.0.1",
            "255.255.255.255",
            "10.0.200.9",
            "2001:db8::1",
            "::",
        ] {
            let a: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_string(a), a.to_string());
        }
        for o in 0..=255u8 {
            let a = IpAddr::from([o, 255 - o, o / 3, 9]);
            assert_eq!(ip_string(a), a.to_string());
        }
        for v in [0u32, 7, 10, 65535, u32::MAX] {
            let mut s = String::new();
            push_u32(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }
}
