//! The filter program run in user space, with exactly the kernel's semantics
//! (bpf/include/nx_packet.bpf.h): used to test the code generator and, later,
//! to check the kernel against tcpdump on the same packets.

use netxray_abi::filter_op as op;
use netxray_abi::{FilterInsn, FILTER_MAX_INSNS};

/// What the kernel's parser derives from the captured bytes (`nx_parse`).
#[derive(Debug, Clone, Default)]
pub struct PacketView<'a> {
    pub data: &'a [u8],
    pub has_l2: bool,
    pub l3_off: usize,
    pub l4_off: Option<usize>,
    pub ethertype: u16,
    pub l4proto: u8,
    pub frag: bool,
    pub vlan: bool,
    pub vlan_id: u16,
    pub len: u32,
    pub ifindex: u32,
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

impl<'a> PacketView<'a> {
    /// Mirror of `nx_parse`: `protocol` is skb->protocol, `hw_vlan` a tag the
    /// kernel stripped into skb->vlan_tci.
    pub fn parse(
        data: &'a [u8],
        has_l2: bool,
        protocol: u16,
        hw_vlan: Option<u16>,
        len: u32,
    ) -> Self {
        let mut v = PacketView {
            data,
            has_l2,
            len,
            ethertype: protocol,
            ..Default::default()
        };
        if let Some(tci) = hw_vlan {
            v.vlan = true;
            v.vlan_id = tci & 0x0fff;
        }
        let mut off = 0;
        if has_l2 {
            let Some(mut et) = be16(data, 12) else {
                return v;
            };
            off = 14;
            for _ in 0..2 {
                if et != 0x8100 && et != 0x88a8 {
                    break;
                }
                let (Some(tci), Some(next)) = (be16(data, off), be16(data, off + 2)) else {
                    v.ethertype = et;
                    return v;
                };
                if !v.vlan {
                    v.vlan = true;
                    v.vlan_id = tci & 0x0fff;
                }
                et = next;
                off += 4;
            }
            v.ethertype = et;
        } else if protocol == 0 {
            v.ethertype = match data.first().map(|b| b >> 4) {
                Some(4) => 0x0800,
                Some(6) => 0x86dd,
                _ => 0,
            };
        }
        v.l3_off = off;
        match v.ethertype {
            0x0800 if data.len() >= off + 20 => {
                let ihl = (data[off] & 0x0f) as usize * 4;
                v.l4proto = data[off + 9];
                v.frag = be16(data, off + 6).is_some_and(|f| f & 0x1fff != 0);
                if ihl >= 20 && off + ihl < data.len() {
                    v.l4_off = Some(off + ihl);
                }
            }
            0x86dd if data.len() >= off + 40 => {
                v.l4proto = data[off + 6];
                if off + 40 < data.len() {
                    v.l4_off = Some(off + 40);
                }
            }
            _ => {}
        }
        v
    }

    fn load(&self, arg: u8, off: u32) -> Option<u32> {
        let base = match arg & 0x0f {
            op::BASE_L2 => self.has_l2.then_some(0)?,
            op::BASE_L3 => self.l3_off,
            _ => self.l4_off?,
        };
        let size = (arg >> 4) as usize;
        let pos = base.checked_add(off as usize)?;
        let b = self.data.get(pos..pos.checked_add(size)?)?;
        Some(match size {
            1 => b[0] as u32,
            2 => u16::from_be_bytes([b[0], b[1]]) as u32,
            4 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            _ => return None,
        })
    }

    fn meta(&self, k: u32) -> u32 {
        match k {
            op::META_ETHERTYPE => self.ethertype.into(),
            op::META_L4PROTO => self.l4proto.into(),
            op::META_LEN => self.len,
            op::META_HAS_L2 => self.has_l2.into(),
            op::META_VLAN => self.vlan.into(),
            op::META_VLAN_ID => self.vlan_id.into(),
            op::META_L4_OK => self.l4_off.is_some().into(),
            op::META_IFINDEX => self.ifindex,
            op::META_FRAG => self.frag.into(),
            _ => 0,
        }
    }
}

/// Run a filter program; an empty program accepts.
pub fn run(prog: &[FilterInsn], p: &PacketView) -> bool {
    if prog.is_empty() {
        return true;
    }
    let (mut pc, mut a, mut x) = (0usize, 0u32, 0u32);
    for _ in 0..FILTER_MAX_INSNS {
        let Some(i) = prog.get(pc) else { return false };
        let operand = if i.src != 0 { x } else { i.k };
        pc += 1;
        match i.op {
            op::RET => return i.k != 0,
            op::LD_META => a = p.meta(i.k),
            op::LD_ABS => match p.load(i.arg, i.k) {
                Some(v) => a = v,
                None => return false,
            },
            op::LD_IND => match p.load(i.arg, i.k.wrapping_add(x)) {
                Some(v) => a = v,
                None => return false,
            },
            op::LDX_HDRLEN => match p.load((i.arg & 0x0f) | (1 << 4), i.k) {
                Some(v) => x = (v & 0x0f) * 4,
                None => return false,
            },
            op::ALU => {
                a = match i.arg {
                    op::ALU_ADD => a.wrapping_add(operand),
                    op::ALU_SUB => a.wrapping_sub(operand),
                    op::ALU_MUL => a.wrapping_mul(operand),
                    op::ALU_DIV if operand != 0 => a / operand,
                    op::ALU_MOD if operand != 0 => a % operand,
                    op::ALU_AND => a & operand,
                    op::ALU_OR => a | operand,
                    op::ALU_XOR => a ^ operand,
                    op::ALU_LSH => a.checked_shl(operand).unwrap_or(0),
                    op::ALU_RSH => a.checked_shr(operand).unwrap_or(0),
                    op::ALU_NEG => a.wrapping_neg(),
                    _ => return false,
                }
            }
            op::JMP => {
                let t = match i.arg {
                    op::CMP_JA => true,
                    op::CMP_JEQ => a == operand,
                    op::CMP_JGT => a > operand,
                    op::CMP_JGE => a >= operand,
                    op::CMP_JSET => a & operand != 0,
                    _ => return false,
                };
                pc += if t { i.jt } else { i.jf } as usize;
            }
            op::TEST => {
                let v = if i.arg & op::TEST_META != 0 {
                    p.meta(i.src.into())
                } else {
                    match p.load(i.arg, i.src.into()) {
                        Some(v) => v,
                        None => return false,
                    }
                } & i.mask;
                let t = match i.cmp {
                    op::CMP_JEQ => v == i.k,
                    op::CMP_JGT => v > i.k,
                    op::CMP_JGE => v >= i.k,
                    op::CMP_JSET => v & i.k != 0,
                    _ => return false,
                };
                a = v;
                pc += if t { i.jt } else { i.jf } as usize;
            }
            op::TAX => x = a,
            op::TXA => a = x,
            op::LDX_IMM => x = i.k,
            op::LD_IMM => a = i.k,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::{compile, parse_port, Dir, Expr, Net, Proto};
    use super::*;

    fn eth_ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 14];
        p[12] = 0x08;
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        p.extend_from_slice(&ip);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    fn ipv6(next: u8, src: u16, dst: u16, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, next, 64];
        let a = |last: u16| {
            let mut v = vec![0x20, 0x01, 0x0d, 0xb8];
            v.extend_from_slice(&[0; 10]);
            v.extend_from_slice(&last.to_be_bytes());
            v
        };
        p.extend(a(src));
        p.extend(a(dst));
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p
    }

    fn matches(e: &Expr, data: &[u8], has_l2: bool, protocol: u16) -> bool {
        let prog = compile(e).unwrap();
        run(
            &prog,
            &PacketView::parse(data, has_l2, protocol, None, data.len() as u32),
        )
    }

    #[test]
    fn proto_host_port() {
        let udp = eth_ipv4(17, [198, 18, 0, 1], [198, 18, 0, 2], 4000, 53);
        let tcp = eth_ipv4(6, [198, 18, 0, 1], [198, 19, 0, 9], 4000, 80);
        assert!(matches(&Expr::Proto(Proto::Udp), &udp, true, 0));
        assert!(!matches(&Expr::Proto(Proto::Tcp), &udp, true, 0));
        assert!(matches(&Expr::Proto(Proto::Ip), &tcp, true, 0));
        let host = |d, s: &str| Expr::Host(d, Net::parse(s).unwrap());
        assert!(matches(&host(Dir::Dst, "198.18.0.2"), &udp, true, 0));
        assert!(!matches(&host(Dir::Src, "198.18.0.2"), &udp, true, 0));
        assert!(matches(
            &host(Dir::SrcOrDst, "198.19.0.0/16"),
            &tcp,
            true,
            0
        ));
        assert!(matches(
            &host(Dir::SrcOrDst, "198.18.0.0/15"),
            &tcp,
            true,
            0
        ));
        assert!(!matches(&host(Dir::Dst, "198.18.0.0/16"), &tcp, true, 0));
        assert!(matches(&host(Dir::Dst, "0.0.0.0/0"), &tcp, true, 0));
        assert!(matches(&Expr::Port(Dir::Dst, 53, 53), &udp, true, 0));
        assert!(matches(
            &Expr::Port(Dir::SrcOrDst, 4000, 4000),
            &tcp,
            true,
            0
        ));
        assert!(!matches(&Expr::Port(Dir::Src, 80, 80), &tcp, true, 0));
        let (lo, hi) = parse_port("50-60").unwrap();
        assert!(matches(&Expr::Port(Dir::Dst, lo, hi), &udp, true, 0));
        assert!(!matches(&Expr::Port(Dir::Dst, 54, 60), &udp, true, 0));
        let both = Expr::Proto(Proto::Udp).and(Expr::Port(Dir::Dst, 53, 53));
        assert!(matches(&both, &udp, true, 0));
        assert!(!matches(&Expr::Not(Box::new(both)), &udp, true, 0));
        // Without L2: the bytes start at the IPv4 header.
        assert!(matches(
            &host(Dir::Src, "198.18.0.1"),
            &udp[14..],
            false,
            0x0800
        ));
    }

    #[test]
    fn ipv6_prefixes() {
        let p = ipv6(17, 1, 2, 5000, 7);
        let host = |d, s: &str| Expr::Host(d, Net::parse(s).unwrap());
        assert!(matches(&host(Dir::Src, "2001:db8::1"), &p, false, 0x86dd));
        assert!(!matches(&host(Dir::Src, "2001:db8::2"), &p, false, 0x86dd));
        assert!(matches(&host(Dir::Dst, "2001:db8::/32"), &p, false, 0x86dd));
        assert!(matches(
            &host(Dir::Dst, "2001:db8::3/127"),
            &p,
            false,
            0x86dd
        ));
        assert!(!matches(
            &host(Dir::Dst, "2001:db9::/32"),
            &p,
            false,
            0x86dd
        ));
        assert!(matches(&Expr::Proto(Proto::Udp), &p, false, 0x86dd));
        assert!(matches(&Expr::Port(Dir::Dst, 7, 7), &p, false, 0x86dd));
        assert!(!matches(&host(Dir::Src, "198.18.0.1"), &p, false, 0x86dd));
    }

    #[test]
    fn truncated_packets_are_rejected_not_misread() {
        let udp = eth_ipv4(17, [198, 18, 0, 1], [198, 18, 0, 2], 4000, 53);
        assert!(!matches(&Expr::Port(Dir::Dst, 53, 53), &udp[..34], true, 0));
        assert!(!matches(&Expr::Proto(Proto::Udp), &udp[..20], true, 0));
    }

    #[test]
    fn bad_inputs() {
        assert!(Net::parse("198.18.0.1/33").is_err());
        assert!(Net::parse("nope").is_err());
        assert!(parse_port("70000").is_err());
        assert!(parse_port("9-3").is_err());
        assert!(Proto::parse("gre").is_err());
    }
}
