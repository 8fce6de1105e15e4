//! Small values of the event model that are cheap on the per-event path: a
//! full trace decodes hundreds of thousands of events a second, and an owned
//! `String` per name or address was most of its allocations (perf).
//!
//! - [`Name`]: an immutable string (namespace, interface, command, drop
//!   reason names repeat from one event to the next): up to 22 bytes (every
//!   interface and command name) it lives inline and a clone is a copy;
//!   longer, it is shared and a clone is a reference count. [`NameCache`]
//!   turns the kernel's fixed-size C strings into the same `Name` without
//!   allocating again. (Shared names, each event's clones made on the
//!   reader thread and dropped on the writer thread, moved the counter's
//!   cache line between the two CPUs several times an event.)
//! - [`SkbAddr`]: a kernel address, shown as `0xffff...`.
//!
//! Both serialize as JSON strings, exactly as the `String`s they replace.

use serde::{Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable string, inline when short (see the module's notes).
#[derive(Clone)]
pub struct Name(Repr);

/// Bytes a [`Name`] holds inline: with the length and the variant's tag,
/// the same 24 bytes as a `String`.
const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    /// Valid UTF-8 (copied from a `&str`) in `buf[..len]`.
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl Name {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                // SAFETY: `buf[..len]` was copied whole from a `&str` (the
                // only constructor), so it is valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(&buf[..usize::from(*len)]) }
            }
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Self(Repr::Inline {
                len: b.len() as u8,
                buf,
            })
        } else {
            Self(Repr::Shared(s.into()))
        }
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            s.as_str().into()
        } else {
            Self(Repr::Shared(s.into()))
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, o: &Name) -> bool {
        self.as_str() == o.as_str()
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, o: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Name {
    fn cmp(&self, o: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(o.as_str())
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, o: &str) -> bool {
        self.as_str() == o
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The address of a kernel object (an skb), shown as `0xffff888109afe200`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SkbAddr(pub u64);

impl SkbAddr {
    /// Write `0x` and the address in lower-case hex, no padding (as `{:#x}`),
    /// at the start of `buf` (18 bytes suffice); returns the length.
    pub fn format(self, buf: &mut [u8]) -> usize {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (16 - self.0.leading_zeros() as usize / 4).max(1);
        buf[0] = b'0';
        buf[1] = b'x';
        let mut v = self.0;
        for i in (0..digits).rev() {
            buf[2 + i] = HEX[(v & 0xf) as usize];
            v >>= 4;
        }
        2 + digits
    }

    /// Append the address as [`SkbAddr::format`] writes it.
    pub fn push_to(self, out: &mut String) {
        let mut buf = [0u8; 18];
        let n = self.format(&mut buf);
        // Only ASCII digits and "0x" were written.
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
    }
}

impl fmt::Debug for SkbAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for SkbAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for SkbAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(18);
        self.push_to(&mut out);
        s.serialize_str(&out)
    }
}

/// The kernel's fixed-size C strings (comm, ifname: 16 bytes) as [`Name`]s,
/// remembered by their bytes in a small direct-mapped table: after the first
/// event of a process or device the name costs a multiply and two compares,
/// not an allocation (and not a SipHash of 16 bytes, which showed in perf).
/// Two strings landing in one slot just take turns (an allocation each time).
#[derive(Debug)]
pub struct NameCache {
    slots: Vec<Option<([u8; 16], Name)>>,
}

const NAME_SLOTS: usize = 256;

impl Default for NameCache {
    fn default() -> Self {
        Self {
            slots: vec![None; NAME_SLOTS],
        }
    }
}

impl NameCache {
    /// The text up to the first NUL (invalid UTF-8 replaced, as
    /// [`netxray_abi::c_str`] does).
    pub fn get(&mut self, raw: &[u8; 16]) -> Name {
        let (lo, hi) = raw.split_at(8);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        let h = (word(lo) ^ word(hi).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = &mut self.slots[(h >> 56) as usize % NAME_SLOTS];
        if let Some((key, name)) = slot {
            if key == raw {
                return name.clone();
            }
        }
        let name = Name::from(netxray_abi::c_str(raw));
        *slot = Some((*raw, name.clone()));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_short_and_long_are_the_same_strings() {
        for len in 0..40 {
            let text: String = "é-xyz".chars().cycle().take(len).collect();
            let a = Name::from(text.as_str());
            let b = Name::from(text.clone());
            assert_eq!(a.as_str(), text);
            assert_eq!(b.as_str(), text);
            assert_eq!(a, b);
            assert_eq!(a.clone(), text.as_str());
            assert_eq!(format!("{a}"), text);
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
            let hash = |n: &Name| {
                use std::hash::{BuildHasher, BuildHasherDefault};
                BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                    .hash_one(n)
            };
            assert_eq!(hash(&a), hash(&b));
        }
        let (a, b) = (Name::from("a"), Name::from("b"));
        assert!(a < b);
        assert_eq!(std::mem::size_of::<Option<Name>>(), 24);
    }

    #[test]
    fn skb_addresses_print_as_hex() {
        for v in [
            0u64,
            1,
            0xf,
            0x10,
            0xfff,
            0x1000,
            0xffff_8881_09af_e200,
            u64::MAX,
        ] {
            let mut s = String::new();
            SkbAddr(v).push_to(&mut s);
            assert_eq!(s, format!("{v:#x}"));
            assert_eq!(
                serde_json::to_string(&SkbAddr(v)).unwrap(),
                format!("\"{v:#x}\"")
            );
        }
    }

    #[test]
    fn names_are_cached_by_their_bytes() {
        let mut c = NameCache::default();
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(b"eth0");
        raw[6] = b'x'; // after the NUL: ignored in the text
        let a = c.get(&raw);
        assert_eq!(a, "eth0");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"eth0\"");
        let b = c.get(&raw);
        assert_eq!(a, b);
        let full = *b"0123456789abcdef";
        assert_eq!(c.get(&full), "0123456789abcdef");
        // Many names: every one still comes back right.
        for i in 0..2000u32 {
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(&i.to_le_bytes().map(|b| b'a' + b % 26));
            let text = netxray_abi::c_str(&raw);
            assert_eq!(c.get(&raw), text.as_str());
            assert_eq!(c.get(&raw), text.as_str());
        }
    }
}

/// A network namespace as the kernel reports it: its inode number, which
/// the kernel hands out again once the namespace is gone, and its cookie,
/// which it never reuses (0: unknown, before Linux 5.12). Two namespaces
/// with one inode are told apart by the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NsId {
    pub inode: u32,
    pub cookie: u64,
}

impl NsId {
    pub fn new(inode: u32, cookie: u64) -> Self {
        Self { inode, cookie }
    }
}
