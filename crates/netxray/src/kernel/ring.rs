//! Reading the BPF ring buffer (`nx_events`) in batches.
//!
//! aya's `RingBuf` (like libbpf's consumer) publishes the consumer position
//! after every record. The producers read that position on every
//! reservation, so under a full trace each record cost the traced CPU a
//! cache line moved back from the reader's CPU. This reader hands out every
//! record the producers have committed and publishes the new position once
//! per [`PUBLISH_EVERY`] records and at the end of each drain.
//!
//! Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (the
//! only page user space may write); page 1 the producer position; then the
//! data area, mapped twice in a row so that a record never wraps. Each record
//! starts with a 32-bit length word (bit 31: still being written; bit 30:
//! discarded) and a 32-bit page offset, and is padded to 8 bytes.

use crate::error::{Error, Result};
use aya::maps::MapData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SZ: u64 = 8;

/// Records handed out between two publications of the consumer position
/// (they free their room in the ring for the producers).
pub const PUBLISH_EVERY: u32 = 256;

pub struct EventRing {
    map: MapData,
    consumer: *mut u8,
    /// The producer page followed by the data area mapped twice.
    producer: *mut u8,
    producer_len: usize,
    page: usize,
    mask: u64,
}

/// An mmap(2) of `len` bytes of the map fd at `offset`.
fn map(fd: RawFd, len: usize, prot: libc::c_int, offset: usize) -> Result<*mut u8> {
    // SAFETY: a fresh shared mapping of the ring buffer's fd; the kernel
    // checks sizes, offsets and protections against the map.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            offset as i64,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::io(
            "mapping the ring buffer",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(p.cast())
}

impl EventRing {
    /// `bytes`: the ring's size (a power of two, as the kernel requires).
    pub fn new(map_data: MapData, bytes: u32) -> Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map_data.fd().as_fd().as_raw_fd();
        let consumer = map(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer_len = page + 2 * bytes as usize;
        let producer = match map(fd, producer_len, libc::PROT_READ, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: consumer was mapped above with this length.
                unsafe { libc::munmap(consumer.cast(), page) };
                return Err(e);
            }
        };
        Ok(Self {
            map: map_data,
            consumer,
            producer,
            producer_len,
            page,
            mask: u64::from(bytes) - 1,
        })
    }

    /// The ring's size in bytes.
    pub fn size(&self) -> u64 {
        self.mask + 1
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: page 0 of the mapping is the kernel's consumer_pos, an
        // unsigned long (64 bits on the targets aya supports), page-aligned.
        unsafe { &*self.consumer.cast::<AtomicU64>() }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, for the producer page.
        unsafe { &*self.producer.cast::<AtomicU64>() }
    }

    /// Hand every committed record to `f`, in order, until the ring is empty
    /// or `f` returns false (the record it was given counts as consumed).
    /// Returns how many records were handed out.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8]) -> bool) -> u64 {
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        let mut handed = 0u64;
        let mut unpublished = 0u32;
        'outer: loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons >= prod {
                break;
            }
            while cons < prod {
                let off = self.page + (cons & self.mask) as usize;
                // SAFETY: off lies in the first copy of the data area, and
                // the length word is 4-byte aligned (records are 8-aligned);
                // the kernel writes it with release semantics.
                let len_word =
                    unsafe { &*self.producer.add(off).cast::<AtomicU32>() }.load(Ordering::Acquire);
                if len_word & BUSY_BIT != 0 {
                    break 'outer;
                }
                let len = (len_word & !(BUSY_BIT | DISCARD_BIT)) as usize;
                cons += (HDR_SZ + len as u64).next_multiple_of(8);
                let mut go_on = true;
                if len_word & DISCARD_BIT == 0 {
                    // SAFETY: the record (at most the ring's size) lies in the
                    // data area mapped twice, so it never runs past the end of
                    // the mapping; the producer committed it (busy bit clear)
                    // and will not touch it until the position moves past it.
                    let data = unsafe {
                        std::slice::from_raw_parts(self.producer.add(off + HDR_SZ as usize), len)
                    };
                    handed += 1;
                    go_on = f(data);
                }
                unpublished += 1;
                if unpublished >= PUBLISH_EVERY || !go_on {
                    self.consumer_pos().store(cons, Ordering::Release);
                    unpublished = 0;
                }
                if !go_on {
                    return handed;
                }
            }
        }
        if unpublished > 0 {
            self.consumer_pos().store(cons, Ordering::Release);
        }
        handed
    }
}

impl AsFd for EventRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }
}

impl AsRawFd for EventRing {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Drop for EventRing {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in new() with these lengths and
        // nothing borrowed from them outlives &mut self.
        unsafe {
            libc::munmap(self.consumer.cast(), self.page);
            libc::munmap(self.producer.cast(), self.producer_len);
        }
    }
}
