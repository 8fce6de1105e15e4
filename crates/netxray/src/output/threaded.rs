//! Output on its own thread: the reader drains the ring buffer, decodes and
//! correlates; a second thread renders and writes (JSON, text, journeys).
//!
//! Why: at hundreds of thousands of events a second the reader's one CPU is
//! the limit of a full trace, and half its time went to rendering and
//! writing. With the two halves on two threads the scheduler can run them
//! where there is room: on a machine with idle CPUs a full trace keeps up
//! with twice the events; on a busy one the work can go to the CPU that has
//! time instead of the one where the traced application waits for its
//! packets.
//!
//! Events cross in batches ([`BATCH`]) over a bounded channel ([`DEPTH`]
//! batches, at most ~1000 events in flight): when the writer falls behind,
//! the reader blocks on the channel, the ring buffer fills and the kernel
//! side applies its back-pressure (nx_emit_rec), as with one thread; memory
//! stays bounded.
//! Batch vectors go back to the reader to be filled again.
//!
//! Output order is the order of the calls: events, nftables messages, idle
//! ticks and flushes travel down the same channel.

use super::Printer;
use crate::model::event::TraceEvent;
use crate::model::nft::NftEvent;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Events per batch handed to the writer. Small batches keep what crosses
/// between the threads small (64 events are ~40 KB): in the flood bench
/// (mode 4, same rounds) 16 gave 0.455, 32 0.497, 64 0.558, 128 0.512 and
/// 256 0.387.
pub const BATCH: usize = 64;
/// Batches in flight between reader and writer.
pub const DEPTH: usize = 16;

enum Msg {
    Events(Vec<TraceEvent>),
    Nft(Box<NftEvent>),
    Idle(u64),
    Flush,
    /// Print what is held; answer when done.
    Finish(SyncSender<()>),
}

/// What the writer tells the reader.
#[derive(Default)]
struct Shared {
    /// Items printed (the inner printer's count, when it keeps one).
    shown: AtomicU64,
    counts: AtomicBool,
    /// The first write error: later calls return it.
    error: Mutex<Option<(io::ErrorKind, String)>>,
    note: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self) -> Option<io::Error> {
        let e = self.error.lock().ok()?;
        e.as_ref().map(|(k, m)| io::Error::new(*k, m.clone()))
    }
}

/// A [`Printer`] whose work runs on a thread of its own.
pub struct ThreadedPrinter {
    tx: Option<SyncSender<Msg>>,
    /// Emptied batches coming back.
    spare: Receiver<Vec<TraceEvent>>,
    batch: Vec<TraceEvent>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl ThreadedPrinter {
    /// Start the writer thread; `make` builds the printer there (stdout is
    /// locked by the thread that writes it).
    pub fn spawn<F>(make: F) -> io::Result<Self>
    where
        F: FnOnce() -> Box<dyn Printer> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Msg>(DEPTH);
        let (spare_tx, spare) = mpsc::sync_channel::<Vec<TraceEvent>>(DEPTH + 2);
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let (up_tx, up) = mpsc::sync_channel(1);
        let worker = std::thread::Builder::new()
            .name("netxray-out".into())
            .spawn(move || {
                let p = make();
                // Whether it counts its items is known before the first event.
                theirs.counts.store(p.shown().is_some(), Ordering::Relaxed);
                let _ = up_tx.send(());
                write_loop(p, rx, spare_tx, &theirs)
            })?;
        up.recv()
            .map_err(|_| io::Error::other("the output thread did not start"))?;
        Ok(Self {
            tx: Some(tx),
            spare,
            batch: Vec::with_capacity(BATCH),
            shared,
            worker: Some(worker),
        })
    }

    fn send(&mut self, m: Msg) -> io::Result<()> {
        if let Some(e) = self.shared.error() {
            return Err(e);
        }
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "output thread ended");
        self.tx.as_ref().ok_or_else(gone)?.send(m).map_err(|_| {
            self.shared
                .error()
                .unwrap_or_else(|| io::Error::other("output thread ended"))
        })
    }

    /// Hand the events gathered so far to the writer.
    fn send_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = std::mem::replace(&mut self.batch, next);
        self.send(Msg::Events(full))
    }
}

fn write_loop(
    mut p: Box<dyn Printer>,
    rx: Receiver<Msg>,
    spare: SyncSender<Vec<TraceEvent>>,
    shared: &Shared,
) {
    let mut failed = false;
    let note = |p: &dyn Printer| {
        shared
            .shown
            .store(p.shown().unwrap_or_default(), Ordering::Relaxed);
        if let Ok(mut n) = shared.note.lock() {
            *n = p.summary_note();
        }
    };
    note(p.as_ref());
    for m in rx {
        // After a write error messages are only taken off the channel (the
        // reader learns of the error at its next call and stops).
        let r = match m {
            Msg::Events(mut evs) => {
                let mut r = Ok(());
                if !failed {
                    for ev in evs.drain(..) {
                        r = p.event_owned(ev);
                        if r.is_err() {
                            break;
                        }
                    }
                }
                evs.clear();
                let _ = spare.try_send(evs);
                // The count moves on with every batch (journeys).
                shared
                    .shown
                    .store(p.shown().unwrap_or_default(), Ordering::Relaxed);
                r
            }
            Msg::Nft(ev) if !failed => p.nft(&ev),
            Msg::Idle(now) if !failed => p.idle(now),
            Msg::Flush => {
                let r = p.flush();
                note(p.as_ref());
                r
            }
            Msg::Finish(done) => {
                let r = if failed {
                    Ok(())
                } else {
                    p.finish().and_then(|()| p.flush())
                };
                note(p.as_ref());
                if let Err(e) = &r {
                    set_error(shared, e);
                    failed = true;
                }
                let _ = done.send(());
                continue;
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            if !failed {
                set_error(shared, &e);
                failed = true;
            }
        }
    }
    if !failed {
        let _ = p.flush();
    }
}

fn set_error(shared: &Shared, e: &io::Error) {
    if let Ok(mut slot) = shared.error.lock() {
        slot.get_or_insert_with(|| (e.kind(), e.to_string()));
    }
}

impl Printer for ThreadedPrinter {
    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        self.event_owned(ev.clone())
    }

    fn event_owned(&mut self, ev: TraceEvent) -> io::Result<()> {
        self.batch.push(ev);
        if self.batch.len() >= BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    fn nft(&mut self, ev: &NftEvent) -> io::Result<()> {
        self.send_batch()?;
        self.send(Msg::Nft(Box::new(ev.clone())))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_batch()?;
        self.send(Msg::Flush)
    }

    fn idle(&mut self, now_ns: u64) -> io::Result<()> {
        self.send_batch()?;
        self.send(Msg::Idle(now_ns))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.send_batch()?;
        let (done_tx, done) = mpsc::sync_channel(1);
        self.send(Msg::Finish(done_tx))?;
        let _ = done.recv();
        match self.shared.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn shown(&self) -> Option<u64> {
        self.shared
            .counts
            .load(Ordering::Relaxed)
            .then(|| self.shared.shown.load(Ordering::Relaxed))
    }

    fn summary_note(&self) -> Option<String> {
        self.shared.note.lock().ok().and_then(|n| n.clone())
    }
}

impl Drop for ThreadedPrinter {
    fn drop(&mut self) {
        // Whatever is still gathered, then the end of the channel.
        let _ = self.send_batch();
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Records what reaches it, on the writer thread.
    struct Probe {
        seen: Arc<Mutex<Vec<String>>>,
        fail_after: Option<usize>,
        counted: Option<u64>,
        calls: Arc<AtomicUsize>,
    }

    impl Printer for Probe {
        fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            if self.fail_after.is_some_and(|f| n >= f) {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
            }
            if let Some(c) = self.counted.as_mut() {
                *c += 1;
            }
            self.seen.lock().unwrap().push(format!("ev {}", ev.ts_ns));
            Ok(())
        }
        fn nft(&mut self, ev: &NftEvent) -> io::Result<()> {
            self.seen.lock().unwrap().push(format!("nft {}", ev.ts_ns));
            Ok(())
        }
        fn idle(&mut self, now: u64) -> io::Result<()> {
            self.seen.lock().unwrap().push(format!("idle {now}"));
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            self.seen.lock().unwrap().push("finish".into());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn shown(&self) -> Option<u64> {
            self.counted
        }
        fn summary_note(&self) -> Option<String> {
            Some("probe".into())
        }
    }

    fn probe(
        fail_after: Option<usize>,
        counted: bool,
    ) -> (ThreadedPrinter, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let theirs = seen.clone();
        let p = ThreadedPrinter::spawn(move || {
            Box::new(Probe {
                seen: theirs,
                fail_after,
                counted: counted.then_some(0),
                calls: Arc::new(AtomicUsize::new(0)),
            }) as Box<dyn Printer>
        })
        .expect("spawn");
        (p, seen)
    }

    fn ev(ts: u64) -> TraceEvent {
        TraceEvent {
            ts_ns: ts,
            ..Default::default()
        }
    }

    #[test]
    fn everything_arrives_in_order() {
        let (mut p, seen) = probe(None, false);
        let n = BATCH as u64 * 3 + 7;
        for i in 0..n {
            p.event_owned(ev(i)).unwrap();
            if i == 5 {
                p.nft(&NftEvent {
                    ts_ns: 99,
                    ..Default::default()
                })
                .unwrap();
            }
        }
        p.idle(1234).unwrap();
        p.flush().unwrap();
        p.finish().unwrap();
        assert_eq!(p.summary_note().as_deref(), Some("probe"));
        assert_eq!(p.shown(), None);
        drop(p);
        let seen = seen.lock().unwrap();
        let mut want: Vec<String> = (0..n).map(|i| format!("ev {i}")).collect();
        want.insert(6, "nft 99".into());
        want.push("idle 1234".into());
        want.push("finish".into());
        assert_eq!(*seen, want);
    }

    #[test]
    fn a_write_error_reaches_the_reader() {
        let (mut p, _seen) = probe(Some(10), false);
        let mut err = None;
        for i in 0..(BATCH as u64 * (DEPTH as u64 + 4)) {
            if let Err(e) =
                p.event_owned(ev(i))
                    .and_then(|()| if i % 64 == 0 { p.flush() } else { Ok(()) })
            {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the error comes back");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn the_printer_s_own_count_comes_back() {
        let (mut p, _seen) = probe(None, true);
        for i in 0..(BATCH as u64 + 10) {
            p.event_owned(ev(i)).unwrap();
        }
        p.flush().unwrap();
        p.finish().unwrap();
        assert_eq!(p.shown(), Some(BATCH as u64 + 10));
    }
}
