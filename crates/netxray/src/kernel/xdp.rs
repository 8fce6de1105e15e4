//! Who holds an interface's XDP: when netxray's XDP link is refused
//! (EBUSY/EEXIST: one XDP program per interface, and generic and native
//! cannot be mixed), the error names the program there (id and name, as
//! `bpftool prog` and `ip link` show them).

use crate::kernel::sys;
use crate::kernel::sys::netlink::{Attrs, Message, NlSocket};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_PROG_ID: u16 = 4;
/// `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;

/// The program attached at XDP of `ifindex` in the calling thread's
/// namespace: (id, name); None when there is none or it cannot be read.
pub fn holder(ifindex: u32) -> Option<(u32, String)> {
    let sock = NlSocket::open(libc::NETLINK_ROUTE).ok()?;
    let seq = sock.next_seq();
    let header = [0u8; IFINFOMSG_LEN]; // AF_UNSPEC: every link
    let req = Message::with_header(
        RTM_GETLINK,
        (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        seq,
        &header,
    )
    .finish();
    for m in sock.dump(&req, seq).ok()? {
        if m.ty != RTM_NEWLINK {
            continue;
        }
        let msg = m.as_msg();
        let Ok((hdr, attrs)) = msg.split_header(IFINFOMSG_LEN) else {
            continue;
        };
        let index = u32::from_ne_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if index != ifindex {
            continue;
        }
        let id = Attrs::parse(attrs)
            .ok()?
            .nested(IFLA_XDP)
            .ok()??
            .u32(IFLA_XDP_PROG_ID)
            .ok()??;
        let name = sys::prog_name_by_id(id).unwrap_or_else(|_| "?".into());
        return Some((id, name));
    }
    None
}

/// The error for a refused XDP link on `ifname`.
pub fn held_message(ifname: &str, holder: Option<(u32, String)>) -> String {
    match holder {
        Some((id, name)) => format!(
            "XDP on {ifname} is held by another program (id {id}, name {name}), left in place: use the tc hooks there (-t tc), or detach it"
        ),
        None => format!(
            "XDP on {ifname} is held by another program, left in place: use the tc hooks there (-t tc), or detach it"
        ),
    }
}

/// The name of interface `ifindex` in the calling thread's namespace.
pub fn ifname(ifindex: u32) -> String {
    sys::ifname(ifindex).unwrap_or_else(|_| format!("interface {ifindex}"))
}
