//! The chunked transfer coding (RFC 9112 §7.1), followed byte by byte where
//! the bytes were captured and counted where they were not; and, once the
//! chunk boundaries are lost, the end of the body recognised by the bytes a
//! segment ends with.
//!
//! Nothing is stored: chunk sizes are summed as their digits go by, and
//! extensions and trailer fields are only counted.

/// Longest chunk-size line accepted (size, extensions, line end): longer is
/// taken as not chunked framing.
const SIZE_LINE_MAX: u32 = 4096;

/// Where the decoder stands inside the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// In a chunk-size line: the size so far, its digit count, whether an
    /// extension (or whitespace) began, whether a CR came, the line's length.
    Size {
        value: u64,
        digits: u8,
        ext: bool,
        cr: bool,
        line: u32,
    },
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd { cr: bool },
    /// After the last chunk: trailer lines up to an empty one. `empty`: the
    /// current line has no byte yet (a CR aside).
    Trailer { empty: bool, cr: bool },
}

/// What feeding bytes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// All bytes were body bytes; the body goes on.
    More,
    /// The body ended after this many bytes.
    End(usize),
    /// The bytes are not chunked framing.
    Bad,
}

enum Byte {
    More,
    End,
    Bad,
}

impl Chunk {
    /// At the start of a chunked body.
    pub fn start() -> Chunk {
        Chunk::Size {
            value: 0,
            digits: 0,
            ext: false,
            cr: false,
            line: 0,
        }
    }

    /// Follows captured body bytes.
    pub fn feed(&mut self, b: &[u8]) -> Step {
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if let Chunk::Data(left) = self {
                let n = (b.len() - i).min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                if *left == 0 {
                    *self = Chunk::DataEnd { cr: false };
                }
                i += n;
                continue;
            }
            match self.byte(c) {
                Byte::More => i += 1,
                Byte::End => return Step::End(i + 1),
                Byte::Bad => return Step::Bad,
            }
        }
        Step::More
    }

    /// Skips `n` bytes that were not captured; they are only known as long
    /// as they are chunk data. Returns how many were skipped.
    pub fn skip(&mut self, n: u64) -> u64 {
        let Chunk::Data(left) = self else {
            return 0;
        };
        let k = n.min(*left);
        *left -= k;
        if *left == 0 {
            *self = Chunk::DataEnd { cr: false };
        }
        k
    }

    fn byte(&mut self, c: u8) -> Byte {
        match self {
            Chunk::Size { .. } => self.size_byte(c),
            Chunk::Data(_) => Byte::More, // not reached: data goes in bulk
            Chunk::DataEnd { cr } => match (c, *cr) {
                (b'\r', false) => {
                    *cr = true;
                    Byte::More
                }
                (b'\n', _) => {
                    *self = Chunk::start();
                    Byte::More
                }
                _ => Byte::Bad,
            },
            Chunk::Trailer { empty, cr } => match c {
                b'\n' if *empty => Byte::End,
                b'\n' => {
                    (*empty, *cr) = (true, false);
                    Byte::More
                }
                b'\r' if !*cr => {
                    *cr = true;
                    Byte::More
                }
                _ => {
                    (*empty, *cr) = (false, false);
                    Byte::More
                }
            },
        }
    }

    fn size_byte(&mut self, c: u8) -> Byte {
        let Chunk::Size {
            value,
            digits,
            ext,
            cr,
            line,
        } = self
        else {
            return Byte::Bad;
        };
        *line += 1;
        if *line > SIZE_LINE_MAX {
            return Byte::Bad;
        }
        match (c, *cr) {
            (b'\n', _) if *digits > 0 => {
                *self = match *value {
                    0 => Chunk::Trailer {
                        empty: true,
                        cr: false,
                    },
                    n => Chunk::Data(n),
                };
                Byte::More
            }
            (_, true) => Byte::Bad,
            (b'\r', false) if *digits > 0 => {
                *cr = true;
                Byte::More
            }
            (_, false) if *ext => Byte::More,
            (b';' | b' ' | b'\t', false) if *digits > 0 => {
                *ext = true;
                Byte::More
            }
            _ => hex_digit(c, value, digits),
        }
    }
}

/// One more hex digit of the size (at most 16).
fn hex_digit(c: u8, value: &mut u64, digits: &mut u8) -> Byte {
    let Some(d) = char::from(c).to_digit(16) else {
        return Byte::Bad;
    };
    if *digits >= 16 {
        return Byte::Bad;
    }
    *digits += 1;
    *value = (*value << 4) | u64::from(d);
    Byte::More
}

/// Whether `end`, the stream's last bytes, end a chunked body: the last
/// chunk (`0`, or zeros, with or without extensions), trailer fields or
/// none, and the empty line. The last-chunk line must have a line end
/// before it inside `end` (otherwise it could be the end of a size).
pub(super) fn ends_body(end: &[u8]) -> bool {
    let Some(mut rest) = strip_eol(end) else {
        return false;
    };
    loop {
        // `rest` ends where a line ended; the line before that end:
        let Some(r) = strip_eol(rest) else {
            return false;
        };
        let Some(i) = r.iter().rposition(|&c| c == b'\n') else {
            return false;
        };
        let line = r.get(i + 1..).unwrap_or(&[]);
        if is_last_chunk(line) {
            return true;
        }
        if !is_trailer_field(line) {
            return false;
        }
        rest = r.get(..=i).unwrap_or(&[]);
    }
}

/// `b` without its final line end (CRLF or LF).
fn strip_eol(b: &[u8]) -> Option<&[u8]> {
    let b = b.strip_suffix(b"\n")?;
    Some(b.strip_suffix(b"\r").unwrap_or(b))
}

/// `0`, `000`, `0;ext`, `0 ;ext`.
fn is_last_chunk(line: &[u8]) -> bool {
    let zeros = line.iter().take_while(|&&c| c == b'0').count();
    zeros > 0 && matches!(line.get(zeros), None | Some(b';' | b' ' | b'\t'))
}

/// `name: value` with a token name.
fn is_trailer_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&c| c == b':') else {
        return false;
    };
    colon > 0
        && line
            .iter()
            .take(colon)
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}
