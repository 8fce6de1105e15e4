//! Fast text for the per-event path: addresses and numbers written straight
//! into a String (std's `Display` for `Ipv4Addr` goes through padding
//! machinery and costs several times more, which shows at 300k events/s).

use std::fmt::Write;
use std::net::IpAddr;

/// Append a decimal number.
pub fn push_u32(out: &mut String, v: u32) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Append an address as `198.18.0.1` or `2001:db8::1`.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            // Digits into a buffer, one append (four itoa calls and three
            // pushes cost ~250 instructions an address).
            let mut buf = [0u8; 15];
            let mut n = 0;
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
            // Only ASCII digits and dots were written.
            out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
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
