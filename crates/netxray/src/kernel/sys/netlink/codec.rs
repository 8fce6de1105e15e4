//! Netlink messages as bytes, for every protocol netxray speaks (nfnetlink,
//! rtnetlink): building requests (header, the family's fixed header,
//! attributes, nests) and splitting what the kernel sends back into messages
//! and attributes. Pure code, no socket: tested on byte fixtures.
//!
//! Layout (include/uapi/linux/netlink.h): `nlmsghdr` {len u32, type u16,
//! flags u16, seq u32, pid u32} (host order), then the family's fixed header
//! (nfnetlink: `nfgenmsg` {family u8, version u8, res_id be16}; tc: `tcmsg`),
//! then attributes {len u16, type u16, data, padding to 4}. nf_tables
//! integers are big endian, rtnetlink's are host order: both have accessors.

use thiserror::Error;

pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLA_F_NESTED: u16 = 0x8000;
/// The type bits of an attribute (without NESTED and NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_APPEND: u16 = 0x800;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink message or attribute that does not add up.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("netlink message truncated: {0}")]
    Truncated(&'static str),
    #[error("netlink attribute {ty}: expected {want} bytes, got {got}")]
    AttrSize { ty: u16, want: usize, got: usize },
    #[error("netlink attribute {0}: not UTF-8")]
    NotUtf8(u16),
}

/// One request being built: `nlmsghdr`, the family's fixed header, then
/// attributes.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Vec<u8>,
    /// Start offsets of the nests still open.
    nests: Vec<usize>,
}

impl Message {
    /// A message whose fixed header (after `nlmsghdr`) is `header`, padded
    /// to 4 bytes.
    pub fn with_header(ty: u16, flags: u16, seq: u32, header: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills it
        buf.extend_from_slice(header);
        let mut m = Self {
            buf,
            nests: Vec::new(),
        };
        m.pad();
        m
    }

    /// An nfnetlink message: `nfgenmsg` {family, NFNETLINK_V0, res_id};
    /// `res_id` is host order (written big endian).
    pub fn nfnetlink(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Self {
        let be = res_id.to_be_bytes();
        Self::with_header(ty, flags, seq, &[family, 0, be[0], be[1]])
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// An attribute with raw bytes.
    pub fn put(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = (NLA_HDRLEN + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// A NUL-terminated string attribute.
    pub fn put_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.put(ty, &data)
    }

    pub fn put_be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    /// A host-order u32 (rtnetlink's integers).
    pub fn put_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_ne_bytes())
    }

    /// Open a nested attribute; close it with [`Message::end_nest`].
    pub fn nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end_nest(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The message's bytes, length set (open nests are closed).
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One message the kernel sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// Everything after `nlmsghdr`.
    pub payload: &'a [u8],
}

impl<'a> NlMsg<'a> {
    /// NLMSG_ERROR: the errno (0 is an acknowledgement, negative an error).
    pub fn error_code(&self) -> Result<i32, DecodeError> {
        let b = self
            .payload
            .get(..4)
            .ok_or(DecodeError::Truncated("NLMSG_ERROR without error code"))?;
        Ok(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An nfnetlink message: (family, attributes after `nfgenmsg`).
    pub fn nfgen(&self) -> Result<(u8, &'a [u8]), DecodeError> {
        if self.payload.len() < NFGENMSG_LEN {
            return Err(DecodeError::Truncated("nfnetlink message without nfgenmsg"));
        }
        Ok((self.payload[0], &self.payload[NFGENMSG_LEN..]))
    }

    /// A message with a fixed header of `len` bytes: (header, attributes).
    pub fn split_header(&self, len: usize) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
        let at = align4(len);
        if self.payload.len() < len {
            return Err(DecodeError::Truncated(
                "message shorter than its fixed header",
            ));
        }
        Ok((
            &self.payload[..len],
            self.payload.get(at..).unwrap_or_default(),
        ))
    }
}

/// Split a datagram into messages.
pub fn messages(mut buf: &[u8]) -> Result<Vec<NlMsg<'_>>, DecodeError> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(DecodeError::Truncated("message length"));
        }
        out.push(NlMsg {
            ty: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: word(8),
            pid: word(12),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// The attributes of one level, by type (the last one of a type wins).
#[derive(Debug, Clone, Default)]
pub struct Attrs<'a> {
    by_type: Vec<Option<&'a [u8]>>,
}

impl<'a> Attrs<'a> {
    pub fn parse(mut buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut by_type: Vec<Option<&'a [u8]>> = Vec::new();
        while buf.len() >= NLA_HDRLEN {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
            if len < NLA_HDRLEN || len > buf.len() {
                return Err(DecodeError::Truncated("attribute length"));
            }
            let i = ty as usize;
            if by_type.len() <= i {
                by_type.resize(i + 1, None);
            }
            by_type[i] = Some(&buf[NLA_HDRLEN..len]);
            buf = &buf[align4(len).min(buf.len())..];
        }
        Ok(Self { by_type })
    }

    pub fn bytes(&self, ty: u16) -> Option<&'a [u8]> {
        self.by_type.get(ty as usize).copied().flatten()
    }

    fn fixed<const N: usize>(&self, ty: u16) -> Result<Option<[u8; N]>, DecodeError> {
        match self.bytes(ty) {
            None => Ok(None),
            Some(b) => {
                b.get(..N)
                    .and_then(|b| b.try_into().ok())
                    .map(Some)
                    .ok_or(DecodeError::AttrSize {
                        ty,
                        want: N,
                        got: b.len(),
                    })
            }
        }
    }

    pub fn be16(&self, ty: u16) -> Result<Option<u16>, DecodeError> {
        Ok(self.fixed::<2>(ty)?.map(u16::from_be_bytes))
    }

    pub fn be32(&self, ty: u16) -> Result<Option<u32>, DecodeError> {
        Ok(self.fixed::<4>(ty)?.map(u32::from_be_bytes))
    }

    pub fn be64(&self, ty: u16) -> Result<Option<u64>, DecodeError> {
        Ok(self.fixed::<8>(ty)?.map(u64::from_be_bytes))
    }

    /// A host-order u32 (rtnetlink's integers).
    pub fn u32(&self, ty: u16) -> Result<Option<u32>, DecodeError> {
        Ok(self.fixed::<4>(ty)?.map(u32::from_ne_bytes))
    }

    /// A string attribute, without its NUL.
    pub fn str(&self, ty: u16) -> Result<Option<&'a str>, DecodeError> {
        match self.bytes(ty) {
            None => Ok(None),
            Some(b) => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                std::str::from_utf8(&b[..end])
                    .map(Some)
                    .map_err(|_| DecodeError::NotUtf8(ty))
            }
        }
    }

    pub fn nested(&self, ty: u16) -> Result<Option<Attrs<'a>>, DecodeError> {
        self.bytes(ty).map(Attrs::parse).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_message_with_nests_and_padding() {
        let mut m = Message::nfnetlink(0x0a00, NLM_F_REQUEST | NLM_F_ACK, 7, 1, 0);
        m.put_str(1, "abc").nest(4).put_be32(1, 3).end_nest();
        let b = m.finish();
        assert_eq!(b.len(), 16 + 4 + 8 + 12);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 0x0a00);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        assert_eq!(&b[16..20], &[1, 0, 0, 0]);
        // "abc\0" in an attribute of length 8.
        assert_eq!(&b[20..28], &[8, 0, 1, 0, b'a', b'b', b'c', 0]);
        // The nest: length 12, type 4 | NESTED, then a be32.
        assert_eq!(&b[28..32], &[12, 0, 4, 0x80]);
        assert_eq!(&b[32..40], &[8, 0, 1, 0, 0, 0, 0, 3]);

        let msgs = messages(&b).unwrap();
        assert_eq!(msgs.len(), 1);
        let (family, attrs) = msgs[0].nfgen().unwrap();
        assert_eq!(family, 1);
        let a = Attrs::parse(attrs).unwrap();
        assert_eq!(a.str(1).unwrap(), Some("abc"));
        let n = a.nested(4).unwrap().unwrap();
        assert_eq!(n.be32(1).unwrap(), Some(3));
        assert_eq!(a.be32(9).unwrap(), None);
    }

    #[test]
    fn splits_several_messages_and_reads_errors() {
        let mut buf = Message::nfnetlink(NLMSG_ERROR, 0, 1, 0, 0).finish();
        // An ack: error 0 where nfgenmsg would be.
        buf[16..20].copy_from_slice(&0i32.to_ne_bytes());
        let mut err = Message::nfnetlink(NLMSG_ERROR, 0, 2, 0, 0).finish();
        err[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        buf.extend_from_slice(&err);
        let msgs = messages(&buf).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].error_code(), Ok(0));
        assert_eq!(msgs[1].error_code(), Ok(-1));
        assert_eq!(msgs[1].seq, 2);
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        let mut b = Message::nfnetlink(1, 0, 0, 0, 0).finish();
        b[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&b).is_err());
        assert!(Attrs::parse(&[200, 0, 1, 0, 0]).is_err());
        assert!(Attrs::parse(&[2, 0, 1, 0]).is_err());
        let a = Attrs::parse(&[6, 0, 1, 0, 1, 2, 0, 0]).unwrap();
        assert!(matches!(a.be32(1), Err(DecodeError::AttrSize { .. })));
        assert_eq!(a.be16(1), Ok(Some(0x0102)));
        assert!(messages(&[1, 2, 3]).unwrap().is_empty());
    }
}
