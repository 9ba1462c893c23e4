// SPDX-License-Identifier: MPL-2.0
//! The consumers of `vigilsink`, run on its worker thread only: a file (opened, written and
//! synced there, so a blocking `open()` or `write()` never reaches the streaming thread) and the
//! application (the `new-sample` signal and the Rust callback).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use vigil_core::{Codec, CodecError, CodecErrorKind, Emitter};

/// An error a Rust consumer returns: its text goes into the ERROR message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerError(pub String);

impl std::fmt::Display for ConsumerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConsumerError {}

/// The application's Rust callback.
pub type Callback = Box<dyn FnMut(&gst::Sample) -> Result<(), ConsumerError> + Send>;

/// Counters shared by the element and its consumer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Buffers handed to the consumer and delivered.
    pub rendered: AtomicU64,
    /// Buffers dropped by the `leaky` policy.
    pub dropped: AtomicU64,
    /// Bytes of the dropped buffers.
    pub dropped_bytes: AtomicU64,
    /// Running time (ns) of the first and the last dropped buffer (`u64::MAX`: none).
    pub first_drop_ns: AtomicU64,
    /// See `first_drop_ns`.
    pub last_drop_ns: AtomicU64,
    /// Buffers queued and never consumed because the element stopped without EOS.
    pub discarded: AtomicU64,
    /// Bytes of the discarded buffers.
    pub discarded_bytes: AtomicU64,
    /// Buffers queued for the consumer and not taken yet.
    pub queued_items: AtomicU64,
    /// Consumer panics survived with `on-consumer-panic=drop`.
    pub panics: AtomicU64,
    /// Workers abandoned by the watchdog.
    pub abandoned: AtomicU64,
    /// Bytes written to the file (what `write` accepted, partial writes included).
    pub bytes_written: AtomicU64,
    /// Bytes queued for the consumer and not taken yet.
    pub queued_bytes: AtomicU64,
    /// Running time (ns) of the buffer the consumer took last, for the time bound.
    pub consumer_running_time: AtomicU64,
    /// Slowest `render` so far, in microseconds.
    pub render_max_us: AtomicU64,
    /// Sum of `render` times, in microseconds.
    pub render_total_us: AtomicU64,
    /// Number of `render` calls.
    pub render_calls: AtomicU64,
}

/// Where the buffers go.
pub enum Target {
    /// A file, created (truncated) on the worker.
    File {
        /// Its path.
        path: PathBuf,
        /// `fsync` at EOS.
        fsync: bool,
        /// Write after what the file holds (`append`), instead of truncating it.
        append: bool,
        /// Open with `O_SYNC` (`o-sync`): each write reaches storage before it returns.
        o_sync: bool,
        /// How written bytes are held before a `write` (`buffer-mode`, `buffer-size`).
        buffering: Buffering,
        /// How long a write failing with a transient error is retried
        /// (`max-transient-error-timeout`).
        transient: std::time::Duration,
    },
    /// The application: the Rust callback if set, and the `new-sample` signal.
    App {
        /// The Rust callback.
        callback: Option<Arc<Mutex<Callback>>>,
    },
}

/// How bytes for a file are held before they are written (`filesink`'s `buffer-mode`): the
/// worker also writes what it holds whenever its queue is empty, so nothing waits in memory
/// while the sink is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    /// Bytes gathered before a `write`; 0 = every buffer is written as it comes.
    pub limit: usize,
    /// A buffer holding a newline is written at once, with what was gathered before it.
    pub line: bool,
}

impl Buffering {
    /// The element's default: small buffers gathered up to 256 KiB.
    pub const DEFAULT: Buffering = Buffering {
        limit: GATHER,
        line: false,
    };

    /// Whether `data` goes into the gathered bytes (false: write them and it now).
    fn holds(&self, pending: usize, data: &[u8]) -> bool {
        pending + data.len() <= self.limit && !(self.line && data.contains(&b'\n'))
    }
}

/// What the worker does with a consumer panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicPolicy {
    /// A panic is a failure of the run (ERROR, reason panicked).
    Fail,
    /// A panic costs the sample it was given: WARNING, counted, go on.
    Drop,
}

/// One item for the consumer, in stream order.
pub enum Item {
    /// A sample to consume.
    Sample {
        /// The sample (buffer, caps, segment).
        sample: gst::Sample,
        /// Its size, subtracted from the queued bytes when taken.
        size: u64,
    },
    /// A byte-format segment: the following data is written from this offset (a muxer
    /// rewriting its headers). Queued in order with the samples; never dropped.
    Seek(u64),
    /// Small buffers for a file, gathered on the streaming thread (lossless mode only): one
    /// queue entry and one hand-over for many buffers.
    Bytes {
        /// Their bytes, in order.
        data: Vec<u8>,
        /// How many buffers they were.
        buffers: u64,
    },
}

impl Item {
    /// The bytes it carries.
    pub fn size(&self) -> u64 {
        match self {
            Item::Sample { size, .. } => *size,
            Item::Seek(_) => 0,
            Item::Bytes { data, .. } => data.len() as u64,
        }
    }

    /// The buffers it carries.
    pub fn buffers(&self) -> u64 {
        match self {
            Item::Sample { .. } => 1,
            Item::Seek(_) => 0,
            Item::Bytes { buffers, .. } => *buffers,
        }
    }

    /// Whether a `leaky` policy may drop it (samples only, never a seek).
    pub fn droppable(&self) -> bool {
        matches!(self, Item::Sample { .. })
    }
}

enum Sink {
    File {
        file: File,
        path: PathBuf,
        fsync: bool,
        /// Opened to append: writes go to the end, whatever a seek asked.
        append: bool,
        /// Appending: the file's length when it was opened, where the stream's byte 0 goes.
        base: u64,
        /// Bytes taken and not written yet (small buffers are written together).
        pending: Vec<u8>,
        /// Where the next byte goes (after `pending`), for seeks.
        position: u64,
        buffering: Buffering,
        transient: std::time::Duration,
    },
    App {
        callback: Option<Arc<Mutex<Callback>>>,
    },
}

/// The consumer on the worker.
pub struct Consumer {
    sink: Sink,
    element: glib::WeakRef<gst::Element>,
    counters: Arc<Counters>,
    on_panic: PanicPolicy,
}

/// Writes in pieces of this size, with a heartbeat between them, so a buffer written to a slow
/// but working disk or FIFO reader is progress and not a wedge: a `write()` to a pipe returns
/// only when all of it is in the pipe, so 256 KiB to a reader taking 40 KB/s was one 6.5 s call
/// with no heartbeat (abandoned at the default 5 s). 64 KiB is also what `filesink` writes at a
/// time.
const WRITE_CHUNK: usize = 64 * 1024;
/// `O_SYNC` of Linux (`__O_SYNC | O_DSYNC`), for `o-sync`.
const O_SYNC: i32 = 0o4010000;
/// Small buffers are gathered up to this size before a `write` (the worker writes what it
/// holds as soon as its queue is empty, so nothing waits in memory while the sink is idle).
const GATHER: usize = 256 * 1024;

/// Maps a failed write like `filesink`: a full disk or quota is `NO_SPACE_LEFT`, the rest a
/// write error; the text says what was not written.
fn write_error(path: &std::path::Path, e: &std::io::Error, unwritten: u64) -> CodecError {
    let kind = match e.raw_os_error() {
        // ENOSPC, EDQUOT
        Some(28) | Some(122) => CodecErrorKind::NoSpaceLeft,
        _ => CodecErrorKind::Write,
    };
    let what = match e.raw_os_error() {
        Some(28) => "no space left on the device".to_owned(),
        Some(122) => "disk quota exceeded".to_owned(),
        Some(27) => "the file is too large for the file system".to_owned(),
        _ => e.to_string(),
    };
    CodecError::new(
        kind,
        format!(
            "writing to '{}' failed: {what}; {unwritten} byte(s) taken by the consumer were not written",
            path.display()
        ),
    )
}

/// Writes all of `data`, counting every byte `write` accepts (a partial write included).
///
/// A write that fails with a transient error (`EACCES`, as `filesink`, and `EAGAIN`) is tried
/// again every 10 ms for up to `transient`; those retries are not progress for the watchdog.
fn write_counting(
    file: &mut File,
    path: &std::path::Path,
    data: &[u8],
    counters: &Counters,
    transient: std::time::Duration,
    out: &mut Emitter<'_, ()>,
) -> Result<(), CodecError> {
    let mut done = 0;
    let mut failing_since: Option<std::time::Instant> = None;
    while done < data.len() {
        let end = (done + WRITE_CHUNK).min(data.len());
        match file.write(&data[done..end]) {
            Ok(0) => {
                let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "write returned 0");
                return Err(write_error(path, &e, (data.len() - done) as u64));
            }
            Ok(n) => {
                done += n;
                failing_since = None;
                counters
                    .bytes_written
                    .fetch_add(n as u64, Ordering::Relaxed);
                out.heartbeat();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(e.raw_os_error(), Some(13) | Some(11))
                    && failing_since
                        .get_or_insert_with(std::time::Instant::now)
                        .elapsed()
                        < transient =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(write_error(path, &e, (data.len() - done) as u64)),
        }
    }
    Ok(())
}

impl Consumer {
    /// Opens the target (this may block: it runs on the worker, under the watchdog).
    pub fn open(
        target: Target,
        element: glib::WeakRef<gst::Element>,
        counters: Arc<Counters>,
        on_panic: PanicPolicy,
    ) -> Result<Self, CodecError> {
        let sink = match target {
            Target::File {
                path,
                fsync,
                append,
                o_sync,
                buffering,
                transient,
            } => {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true);
                if append {
                    options.append(true);
                } else {
                    options.truncate(true);
                }
                if o_sync {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.custom_flags(O_SYNC);
                }
                let open_error = |e: std::io::Error| {
                    CodecError::new(
                        CodecErrorKind::OpenWrite,
                        format!("could not open '{}' for writing: {e}", path.display()),
                    )
                };
                let file = options.open(&path).map_err(open_error)?;
                // Appending, the stream starts where the file ends.
                let position = if append {
                    file.metadata().map_err(open_error)?.len()
                } else {
                    0
                };
                Sink::File {
                    file,
                    path,
                    fsync,
                    append,
                    pending: Vec::new(),
                    base: position,
                    position,
                    buffering,
                    transient,
                }
            }
            Target::App { callback } => Sink::App { callback },
        };
        Ok(Self {
            sink,
            element,
            counters,
            on_panic,
        })
    }

    fn deliver(
        &mut self,
        sample: &gst::Sample,
        out: &mut Emitter<'_, ()>,
    ) -> Result<(), CodecError> {
        match &mut self.sink {
            Sink::File {
                file,
                path,
                pending,
                position,
                buffering,
                transient,
                ..
            } => {
                let Some(buffer) = sample.buffer() else {
                    return Ok(());
                };
                let map = buffer.map_readable().map_err(|_| {
                    CodecError::new(CodecErrorKind::Write, "could not map a buffer for reading")
                })?;
                let data = map.as_slice();
                *position += data.len() as u64;
                if buffering.holds(pending.len(), data) {
                    pending.extend_from_slice(data);
                    return Ok(());
                }
                if !pending.is_empty() {
                    let r = write_counting(file, path, pending, &self.counters, *transient, out);
                    pending.clear();
                    r?;
                }
                write_counting(file, path, data, &self.counters, *transient, out)
            }
            Sink::App { callback } => {
                if let Some(cb) = callback {
                    let mut cb = cb.lock().unwrap_or_else(|e| e.into_inner());
                    (cb)(sample).map_err(|e| {
                        CodecError::new(
                            CodecErrorKind::Write,
                            format!("the application consumer failed: {e}"),
                        )
                    })?;
                }
                if let Some(element) = self.element.upgrade() {
                    let ret = element.emit_by_name::<gst::FlowReturn>("new-sample", &[sample]);
                    if ret != gst::FlowReturn::Ok {
                        return Err(CodecError::new(
                            CodecErrorKind::Write,
                            format!("a new-sample handler returned {ret:?}"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

impl Codec for Consumer {
    type Input = Item;
    type Output = ();

    fn push(&mut self, item: Item, out: &mut Emitter<'_, ()>) -> Result<(), CodecError> {
        let (sample, size) = match item {
            Item::Seek(offset) => return self.seek(offset, out),
            Item::Sample { sample, size } => (sample, size),
            Item::Bytes { data, buffers } => return self.write_gathered(&data, buffers, out),
        };
        let _ =
            self.counters
                .queued_items
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let _ =
            self.counters
                .queued_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(size))
                });
        if let Some(rt) = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .zip(sample.buffer().and_then(|b| b.pts()))
            .and_then(|(seg, pts)| seg.to_running_time(pts))
        {
            self.counters
                .consumer_running_time
                .store(rt.nseconds(), Ordering::Relaxed);
        }
        match self.on_panic {
            PanicPolicy::Fail => self.deliver(&sample, out)?,
            PanicPolicy::Drop => {
                match catch_unwind(AssertUnwindSafe(|| self.deliver(&sample, out))) {
                    Ok(r) => r?,
                    Err(payload) => {
                        let text = payload
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic payload".to_owned());
                        let n = self.counters.panics.fetch_add(1, Ordering::Relaxed) + 1;
                        if let Some(element) = self.element.upgrade() {
                            gst::element_warning!(
                                element,
                                gst::StreamError::Failed,
                                ("the consumer panicked ({}); its sample was dropped (panic {} so far)", text, n),
                                details: gst::Structure::builder("vigil-sink-consumer-panic")
                                    .field("message", text.as_str())
                                    .field("panics", n)
                                    .build()
                            );
                        }
                        return Ok(());
                    }
                }
            }
        }
        self.counters.rendered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn in_flight(&self) -> bool {
        matches!(&self.sink, Sink::File { pending, .. } if !pending.is_empty())
    }

    /// A flushing seek: a regular file starts again from its first byte, truncated, as
    /// `filesink` does (the element only flushes a file target that is a regular file).
    fn flush(&mut self) -> Result<(), CodecError> {
        if let Sink::File {
            file,
            path,
            pending,
            position,
            ..
        } = &mut self.sink
        {
            pending.clear();
            if *position != 0 {
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| file.set_len(0))
                    .map_err(|e| {
                        CodecError::new(
                            CodecErrorKind::Write,
                            format!(
                                "truncating '{}' for a flushing seek failed: {e}",
                                path.display()
                            ),
                        )
                    })?;
                *position = 0;
                // What was written before is gone: `bytes-written` counts what the file holds.
                self.counters.bytes_written.store(0, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut Emitter<'_, ()>) -> Result<(), CodecError> {
        // The queue is empty: write what was gathered.
        self.write_pending(out)
    }

    fn drain(&mut self, out: &mut Emitter<'_, ()>) -> Result<(), CodecError> {
        self.write_pending(out)?;
        if let Sink::File {
            file, path, fsync, ..
        } = &mut self.sink
        {
            file.flush().map_err(|e| {
                CodecError::new(
                    CodecErrorKind::Write,
                    format!("flushing '{}' failed: {e}", path.display()),
                )
            })?;
            if *fsync {
                file.sync_all().map_err(|e| {
                    CodecError::new(
                        CodecErrorKind::Write,
                        format!("fsync of '{}' failed: {e}", path.display()),
                    )
                })?;
            }
        }
        Ok(())
    }
}

impl Consumer {
    /// Writes buffers gathered by the streaming thread (a file target only).
    fn write_gathered(
        &mut self,
        data: &[u8],
        buffers: u64,
        out: &mut Emitter<'_, ()>,
    ) -> Result<(), CodecError> {
        let _ =
            self.counters
                .queued_items
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let _ =
            self.counters
                .queued_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(data.len() as u64))
                });
        if let Sink::File {
            file,
            path,
            pending,
            position,
            buffering,
            transient,
            ..
        } = &mut self.sink
        {
            *position += data.len() as u64;
            if !pending.is_empty() && buffering.holds(pending.len(), data) {
                pending.extend_from_slice(data);
            } else {
                if !pending.is_empty() {
                    let r = write_counting(file, path, pending, &self.counters, *transient, out);
                    pending.clear();
                    r?;
                }
                write_counting(file, path, data, &self.counters, *transient, out)?;
            }
        }
        self.counters.rendered.fetch_add(buffers, Ordering::Relaxed);
        Ok(())
    }

    fn write_pending(&mut self, out: &mut Emitter<'_, ()>) -> Result<(), CodecError> {
        if let Sink::File {
            file,
            path,
            pending,
            transient,
            ..
        } = &mut self.sink
            && !pending.is_empty()
        {
            let r = write_counting(file, path, pending, &self.counters, *transient, out);
            pending.clear();
            r?;
        }
        Ok(())
    }

    /// A byte segment: what follows is written at `offset` (as `filesink` does, only when it
    /// differs from where the next byte would go).
    fn seek(&mut self, offset: u64, out: &mut Emitter<'_, ()>) -> Result<(), CodecError> {
        self.write_pending(out)?;
        // Appending, the stream's byte 0 is where the file ended when it was opened: a byte
        // source's opening segment (start 0) is where the writes go anyway; a segment that
        // asks to write anywhere else (a muxer rewriting its headers) cannot be honoured.
        if let Sink::File {
            append: true,
            path,
            position,
            base,
            ..
        } = &self.sink
        {
            if base + offset == *position {
                return Ok(());
            }
            return Err(CodecError::new(
                CodecErrorKind::Write,
                format!(
                    "a byte segment from upstream asked to write '{}' at byte {offset} of the stream (byte {} of the file), but with append=true every write goes to the end (byte {position}); write to a new file to let a muxer rewrite its headers",
                    path.display(),
                    base + offset
                ),
            ));
        }
        if let Sink::File {
            file,
            path,
            position,
            ..
        } = &mut self.sink
            && *position != offset
        {
            file.seek(SeekFrom::Start(offset)).map_err(|e| {
                CodecError::new(
                    CodecErrorKind::Write,
                    format!(
                        "seeking in '{}' to byte {offset} (asked by a byte segment from upstream) failed: {e}",
                        path.display()
                    ),
                )
            })?;
            *position = offset;
        }
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // A stop without EOS: what the consumer took is still written (this runs on the
        // worker, under the bound of the shutdown); what was queued is counted by the element.
        if let Sink::File {
            file,
            path,
            pending,
            ..
        } = &mut self.sink
            && !pending.is_empty()
        {
            let data = std::mem::take(pending);
            let mut done = 0;
            while done < data.len() {
                match file.write(&data[done..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        done += n;
                        self.counters
                            .bytes_written
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        gst::warning!(
                            gst::CAT_RUST,
                            "vigilsink: {} bytes for '{}' were not written at stop: {e}",
                            data.len() - done,
                            path.display()
                        );
                        break;
                    }
                }
            }
        }
    }
}
