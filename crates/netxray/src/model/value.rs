//! Small values of the event model that are cheap on the per-event path: a
//! full trace decodes hundreds of thousands of events a second, and an owned
//! `String` per name or address was most of its allocations (perf).
//!
//! - [`Name`]: a shared, immutable string (namespace, interface, command,
//!   drop reason names repeat from one event to the next); cloning it is a
//!   reference count, and [`NameCache`] turns the kernel's fixed-size C
//!   strings into the same `Name` without allocating again.
//! - [`SkbAddr`]: a kernel address, shown as `0xffff...`.
//!
//! Both serialize as JSON strings, exactly as the `String`s they replace.

use serde::{Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A shared string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, o: &str) -> bool {
        &*self.0 == o
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, o: &&str) -> bool {
        &*self.0 == *o
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
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
        assert!(Arc::ptr_eq(&a.0, &b.0));
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
