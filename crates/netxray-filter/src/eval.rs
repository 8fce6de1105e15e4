//! The filter evaluated in user space, with exactly the semantics of the
//! code `ebpf` generates: the reference the kernel is tested against, and
//! the evaluator for records that never were in the kernel's filter.

use super::lower::{Base, Cmp, Low, Val};
use super::ArithOp;

/// A packet as the filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Captured bytes: from the Ethernet header when `l2`, else from the
    /// network header.
    pub data: &'a [u8],
    pub l2: bool,
    /// The network protocol when there is no Ethernet header (the skb's
    /// protocol).
    pub ethertype: u16,
    /// Length on the wire.
    pub len: u32,
}

impl<'a> Frame<'a> {
    /// An Ethernet frame captured whole.
    pub fn ethernet(data: &'a [u8]) -> Self {
        Self {
            data,
            l2: true,
            ethertype: 0,
            len: data.len() as u32,
        }
    }

    fn net(&self, n: u8) -> u64 {
        if self.l2 {
            14 + 4 * n as u64
        } else {
            0
        }
    }

    fn bytes(&self, off: u64, size: u8) -> Option<u32> {
        let start = usize::try_from(off).ok()?;
        let b = self.data.get(start..start.checked_add(size as usize)?)?;
        Some(match size {
            1 => b[0] as u32,
            2 => u16::from_be_bytes([b[0], b[1]]) as u32,
            _ => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        })
    }
}

/// Where `base` + `i` is in the bytes (None: the load fails).
fn offset(base: &Base, i: u32, f: &Frame<'_>) -> Option<u64> {
    Some(match base {
        Base::Link => {
            if !f.l2 {
                return None;
            }
            i as u64
        }
        Base::Net(n) => i as u64 + f.net(*n),
        Base::Ip6Payload(n) => i as u64 + f.net(*n) + 40,
        Base::Ip4Payload(n) => {
            let ihl = (f.bytes(f.net(*n), 1)? & 0x0f) * 4;
            i.wrapping_add(ihl) as u64 + f.net(*n)
        }
    })
}

/// None: a load fell outside the packet, and the whole filter rejects.
fn val(v: &Val, f: &Frame<'_>) -> Option<u32> {
    Some(match v {
        Val::K(k) => *k,
        Val::Len => f.len,
        Val::EtherType(n) => {
            if f.l2 {
                f.bytes(12 + 4 * *n as u64, 2)?
            } else {
                f.ethertype.into()
            }
        }
        Val::Load { base, index, size } => {
            let off = offset(base, val(index, f)?, f)?;
            f.bytes(off, *size)?
        }
        Val::Neg(x) => val(x, f)?.wrapping_neg(),
        Val::Bin(op, x, y) => {
            let (a, b) = (val(x, f)?, val(y, f)?);
            match op {
                ArithOp::Add => a.wrapping_add(b),
                ArithOp::Sub => a.wrapping_sub(b),
                ArithOp::Mul => a.wrapping_mul(b),
                ArithOp::Div => a.checked_div(b)?,
                ArithOp::Mod => a.checked_rem(b)?,
                ArithOp::And => a & b,
                ArithOp::Or => a | b,
                ArithOp::Xor => a ^ b,
                ArithOp::Lsh => a.checked_shl(b).unwrap_or(0),
                ArithOp::Rsh => a.checked_shr(b).unwrap_or(0),
            }
        }
    })
}

fn low(l: &Low, f: &Frame<'_>) -> Option<bool> {
    Some(match l {
        Low::True => true,
        Low::Cmp(a, c, b) => {
            let (a, b) = (val(a, f)?, val(b, f)?);
            match c {
                Cmp::Eq => a == b,
                Cmp::Gt => a > b,
                Cmp::Ge => a >= b,
                Cmp::Set => a & b != 0,
            }
        }
        Low::Not(x) => !low(x, f)?,
        Low::Member { base, fields, set } => {
            for &at in fields {
                let start = usize::try_from(offset(base, at, f)?).ok()?;
                if set.contains(f.data.get(start..start.checked_add(set.width.into())?)?) {
                    return Some(true);
                }
            }
            false
        }
        Low::And(xs) => {
            for x in xs {
                if !low(x, f)? {
                    return Some(false);
                }
            }
            true
        }
        Low::Or(xs) => {
            for x in xs {
                if low(x, f)? {
                    return Some(true);
                }
            }
            false
        }
    })
}

pub(super) fn matches(l: &Low, f: &Frame<'_>) -> bool {
    low(l, f).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::Filter;
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(l4);
        h
    }

    fn ports(s: u16, d: u16) -> Vec<u8> {
        let mut p = s.to_be_bytes().to_vec();
        p.extend_from_slice(&d.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    fn m(expr: &str, frame: &[u8]) -> bool {
        Filter::parse(expr)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(&Frame::ethernet(frame))
    }

    #[test]
    fn primitives_on_an_ipv4_udp_frame() {
        let f = eth(
            0x0800,
            &ipv4(17, [198, 18, 0, 1], [198, 18, 0, 2], &ports(1234, 53)),
        );
        for yes in [
            "udp",
            "ip",
            "udp port 53",
            "dst port 53",
            "src port 1234",
            "portrange 50-60",
            "host 198.18.0.1",
            "src net 198.18.0.0/15",
            "dst host 198.18.0.2",
            "ip proto 17",
            "proto 17",
            "udp[2:2] = 53",
            "ip[9] = 17 and not tcp",
            "len = 54",
            "greater 54 and less 54",
            "ether src 02:00:00:00:00:01",
        ] {
            assert!(m(yes, &f), "{yes}");
        }
        for no in [
            "tcp",
            "ip6",
            "port 80",
            "src port 53",
            "host 198.18.0.3",
            "vlan",
            "arp",
            "icmp",
            "ether broadcast",
            "len > 54",
        ] {
            assert!(!m(no, &f), "{no}");
        }
    }

    #[test]
    fn out_of_bounds_loads_reject_even_under_not() {
        let f = eth(0x0800, &ipv4(6, [198, 18, 0, 1], [198, 18, 0, 2], &[]));
        assert!(m("tcp", &f));
        assert!(!m("tcp[13] = 2", &f));
        assert!(!m("not tcp[13] = 2", &f));
        assert!(!m("tcp[13] = 2 or ip", &f));
        assert!(m("ip or tcp[13] = 2", &f));
    }

    #[test]
    fn vlan_shifts_what_follows() {
        let mut tagged = vec![
            0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x64,
        ];
        tagged.extend_from_slice(&0x0800u16.to_be_bytes());
        tagged.extend(ipv4(
            1,
            [198, 18, 0, 1],
            [198, 18, 0, 2],
            &[8, 0, 0, 0, 0, 1, 0, 1],
        ));
        assert!(m("vlan", &tagged));
        assert!(m("vlan 100", &tagged));
        assert!(!m("vlan 101", &tagged));
        assert!(!m("ip", &tagged));
        assert!(m("vlan and icmp", &tagged));
        assert!(m("vlan 100 and host 198.18.0.2", &tagged));
        assert!(!m("icmp and vlan", &tagged));
    }

    #[test]
    fn division_by_a_zero_from_the_packet_rejects() {
        let f = eth(
            0x0800,
            &ipv4(17, [198, 18, 0, 1], [0, 0, 0, 0], &ports(1, 2)),
        );
        assert!(!m("ip[16] / ip[19] = 0", &f));
        assert!(!m("not ip[16] / ip[19] = 0", &f));
        assert!(m("ip[16] << ip[12] = 0", &f));
    }

    #[test]
    fn without_l2_the_protocol_comes_from_the_kernel() {
        let ip = ipv4(6, [198, 18, 0, 1], [198, 18, 0, 2], &ports(80, 9999));
        let f = Frame {
            data: &ip,
            l2: false,
            ethertype: 0x0800,
            len: ip.len() as u32,
        };
        let m = |e: &str| Filter::parse(e).unwrap().matches(&f);
        assert!(m("tcp port 80"));
        assert!(m("host 198.18.0.2"));
        assert!(!m("ether host 02:00:00:00:00:01"));
        assert!(!m("not ether host 02:00:00:00:00:01"));
        assert!(!m("vlan"));
    }
}
