//! Netlink, spoken by hand: one socket type for every protocol and one
//! message and attribute codec, used by nftables tracing (nfnetlink), the
//! netfilter hook listing (nfnetlink) and the legacy tc attachment
//! (rtnetlink). No netlink crate (netlink-packet-route, neli) is in the
//! offline registry here, and the few messages netxray needs are short.

pub mod codec;
pub mod socket;

pub use codec::{messages, Attrs, DecodeError, Message, NlMsg};
pub use socket::{NlSocket, OwnedMsg};
