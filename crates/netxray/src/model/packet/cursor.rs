//! A bounds-checked reader over captured bytes.

/// Reads big-endian fields from captured bytes. Every read returns `None` when
/// the bytes run out and then leaves the position where it was, so a decoder
/// checks a header's length once, reads its fields with `?`, and can never
/// index past the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// `buf` was shortened to a length a header declared: a header that does
    /// not fit is then malformed rather than truncated.
    clipped: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos`, which may lie past the end (nothing is readable).
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Self {
            buf,
            pos,
            clipped: false,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn clipped(&self) -> bool {
        self.clipped
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let out = <[u8; N]>::try_from(self.buf.get(self.pos..end)?).ok()?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Moves `n` bytes on; `None` (and no move) if fewer remain.
    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        if end > self.buf.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// Ends the readable bytes `len` bytes after the position, when the
    /// capture goes further (Ethernet padding, trailers): what a length field
    /// says is the end of its payload.
    pub(crate) fn limit(&mut self, len: usize) {
        let end = self.pos.saturating_add(len);
        if let Some(head) = self.buf.get(..end) {
            if end < self.buf.len() {
                self.buf = head;
                self.clipped = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn reads_big_endian_and_stops_at_the_end() {
        let mut c = Cursor::at(&[1, 2, 3, 4, 5, 6, 7], 0);
        assert_eq!(c.u8(), Some(1));
        assert_eq!(c.u16(), Some(0x0203));
        assert_eq!(c.array::<5>(), None, "4 bytes left, no move");
        assert_eq!(c.pos(), 3);
        assert_eq!(c.remaining(), 4);
        assert_eq!(c.u32(), Some(0x0405_0607));
        assert_eq!(c.u8(), None);
        assert_eq!(c.peek_u8(), None);
        assert_eq!(c.skip(1), None);
        assert_eq!(c.skip(0), Some(()));
    }

    #[test]
    fn a_position_past_the_end_reads_nothing() {
        let mut c = Cursor::at(&[1, 2], 9);
        assert_eq!(c.remaining(), 0);
        assert_eq!(c.u8(), None);
        assert_eq!(
            c.array::<0>(),
            None,
            "even an empty read starts past the end"
        );
        let mut c = Cursor::at(&[1, 2], usize::MAX);
        assert_eq!(c.skip(1), None);
        assert_eq!(c.array::<2>(), None);
    }

    #[test]
    fn limit_clips_only_when_the_capture_goes_further() {
        let data = [0u8; 10];
        let mut c = Cursor::at(&data, 2);
        c.limit(20);
        assert!(!c.clipped());
        assert_eq!(c.remaining(), 8);
        c.limit(3);
        assert!(c.clipped());
        assert_eq!(c.remaining(), 3);
        assert_eq!(c.skip(4), None);
        let mut c = Cursor::at(&data, 2);
        c.limit(usize::MAX);
        assert_eq!(c.remaining(), 8);
    }
}
