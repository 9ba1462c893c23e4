// SPDX-License-Identifier: MPL-2.0
//! The consumers of `vigilsink`, run on its worker thread only: a file (opened, written and
//! synced there, so a blocking `open()` or `write()` never reaches the streaming thread) and the
//! application (the `new-sample` signal and the Rust callback).

use std::fs::File;
use std::io::Write;
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
    /// Consumer panics survived with `on-consumer-panic=drop`.
    pub panics: AtomicU64,
    /// Workers abandoned by the watchdog.
    pub abandoned: AtomicU64,
    /// Bytes written to the file.
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
    },
    /// The application: the Rust callback if set, and the `new-sample` signal.
    App {
        /// The Rust callback.
        callback: Option<Arc<Mutex<Callback>>>,
    },
}

/// What the worker does with a consumer panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicPolicy {
    /// A panic is a failure of the run (ERROR, reason panicked).
    Fail,
    /// A panic costs the sample it was given: WARNING, counted, go on.
    Drop,
}

/// One item for the consumer.
pub struct Item {
    /// The sample (buffer, caps, segment).
    pub sample: gst::Sample,
    /// Its size, subtracted from the queued bytes when taken.
    pub size: u64,
}

enum Sink {
    File {
        file: File,
        path: PathBuf,
        fsync: bool,
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

/// Writes in pieces of this size, with a heartbeat between them, so a large buffer written to a
/// slow but working disk is progress and not a wedge.
const WRITE_CHUNK: usize = 1 << 20;

impl Consumer {
    /// Opens the target (this may block: it runs on the worker, under the watchdog).
    pub fn open(
        target: Target,
        element: glib::WeakRef<gst::Element>,
        counters: Arc<Counters>,
        on_panic: PanicPolicy,
    ) -> Result<Self, CodecError> {
        let sink = match target {
            Target::File { path, fsync } => {
                let file = File::create(&path).map_err(|e| {
                    CodecError::new(
                        CodecErrorKind::OpenWrite,
                        format!("could not open '{}' for writing: {e}", path.display()),
                    )
                })?;
                Sink::File { file, path, fsync }
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
            Sink::File { file, path, .. } => {
                let Some(buffer) = sample.buffer() else {
                    return Ok(());
                };
                let map = buffer.map_readable().map_err(|_| {
                    CodecError::new(CodecErrorKind::Write, "could not map a buffer for reading")
                })?;
                for chunk in map.as_slice().chunks(WRITE_CHUNK) {
                    file.write_all(chunk).map_err(|e| {
                        CodecError::new(
                            CodecErrorKind::Write,
                            format!("writing to '{}' failed: {e}", path.display()),
                        )
                    })?;
                    self.counters
                        .bytes_written
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    out.heartbeat();
                }
                Ok(())
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
        self.counters.queued_bytes.fetch_sub(
            item.size
                .min(self.counters.queued_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let Some(rt) = item
            .sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .zip(item.sample.buffer().and_then(|b| b.pts()))
            .and_then(|(seg, pts)| seg.to_running_time(pts))
        {
            self.counters
                .consumer_running_time
                .store(rt.nseconds(), Ordering::Relaxed);
        }
        match self.on_panic {
            PanicPolicy::Fail => self.deliver(&item.sample, out)?,
            PanicPolicy::Drop => {
                match catch_unwind(AssertUnwindSafe(|| self.deliver(&item.sample, out))) {
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

    fn drain(&mut self, _out: &mut Emitter<'_, ()>) -> Result<(), CodecError> {
        if let Sink::File { file, path, fsync } = &mut self.sink {
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
