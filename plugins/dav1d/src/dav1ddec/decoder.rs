// SPDX-License-Identifier: MPL-2.0
//! libdav1d as a [`vigil_core::Codec`]: the decoder lives on the worker thread only.
//!
//! Every call into libdav1d (`send_data`, `get_picture`, which may block on its frame threads,
//! `flush`, and the release of each picture) happens here, on the worker. Decoded pictures are
//! copied into GStreamer buffers on the worker too, so no dav1d picture ever reaches the
//! streaming thread or downstream. A bitstream error is not a codec failure: it is handed to the
//! element as [`DecOutput::Error`], which counts it against `max-errors`.

use dav1d::{PixelLayout, PlanarImageComponent};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gst_video::VideoFormat;
use gst_video::prelude::*;
use vigil_core::{Codec, CodecError, CodecErrorKind, Emitter, ThreadCpuProbe, WorkerContext};

/// `send_data`/`get_picture` rounds for one input before libdav1d is considered stuck in a
/// loop that makes no progress (it never needs more than a few).
const MAX_SEND_ROUNDS: u32 = 10_000;
/// Pictures returned by one drain before the drain is considered runaway.
const MAX_DRAIN_PICTURES: u32 = 100_000;

/// Everything needed to open one decoder.
#[derive(Debug, Clone)]
pub struct DecoderSetup {
    /// Threads, 0 = one per logical processor.
    pub n_threads: u32,
    /// Frames decoded in parallel, 0 = chosen by libdav1d from the thread count.
    pub max_frame_delay: u32,
    /// Apply film grain synthesis.
    pub apply_grain: bool,
    /// Operating point of a scalable stream.
    pub operating_point: u32,
    /// Output every spatial layer instead of only the highest.
    pub all_layers: bool,
    /// In-loop filters to apply (`DAV1D_INLOOPFILTER_*` bits).
    pub inloop_filters: u32,
    /// Downstream takes `GstVideoMeta`: pictures go out wrapped, without a copy. Set by the
    /// element's allocation decision, read for every picture.
    pub zero_copy: Arc<AtomicBool>,
}

/// Frames libdav1d 1.0 decodes in parallel (and so holds before the first picture) for these
/// settings: `max-frame-delay` bounded by the thread count, or `min(8, ceil(sqrt(threads)))`.
pub fn frame_delay(setup: &DecoderSetup) -> u64 {
    let threads = if setup.n_threads > 0 {
        u64::from(setup.n_threads)
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1)
            .clamp(1, 256)
    };
    if setup.max_frame_delay > 0 {
        u64::from(setup.max_frame_delay).min(threads)
    } else {
        let mut root = 1u64;
        while root * root < threads {
            root += 1;
        }
        root.min(8)
    }
}

/// One input for the decoder.
pub enum DecInput {
    /// Configuration OBUs (a sequence header) that prime the decoder, after a flush or from
    /// `codec_data`; they carry no frame.
    Header(Vec<u8>),
    /// One temporal unit (or frame) of the stream.
    Data {
        /// The compressed data, mapped on the worker.
        buffer: gst::Buffer,
        /// Presentation time in nanoseconds, carried through libdav1d.
        pts: Option<u64>,
        /// Duration in nanoseconds, carried through libdav1d.
        duration: Option<u64>,
        /// The element's input index, carried through libdav1d as the offset.
        index: i64,
    },
}

/// One decoded picture, already copied into a GStreamer buffer.
#[derive(Debug)]
pub struct DecodedFrame {
    /// The pixels: a copy in the default layout of `format` at `width` x `height`, or (zero
    /// copy) libdav1d's planes with a `GstVideoMeta` giving their strides.
    pub buffer: gst::Buffer,
    /// The raw format libdav1d's layout and bit depth map to.
    pub format: VideoFormat,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The PTS of the input the picture came from.
    pub pts: Option<u64>,
    /// The duration of that input (0 when it had none).
    pub duration: u64,
    /// The input index of that input (-1 for none).
    pub index: i64,
}

/// What comes back from the worker.
#[derive(Debug)]
pub enum DecOutput {
    /// A decoded picture.
    Frame(DecodedFrame),
    /// Data libdav1d could not decode; the decoder goes on with the next input.
    Error(String),
}

/// The raw format for a libdav1d layout and bits per component.
pub fn video_format(layout: PixelLayout, bpc: usize) -> Option<VideoFormat> {
    Some(match (layout, bpc) {
        (PixelLayout::I400, 8) => VideoFormat::Gray8,
        (PixelLayout::I400, 10 | 12) => VideoFormat::Gray16Le,
        (PixelLayout::I420, 8) => VideoFormat::I420,
        (PixelLayout::I420, 10) => VideoFormat::I42010le,
        (PixelLayout::I420, 12) => VideoFormat::I42012le,
        (PixelLayout::I422, 8) => VideoFormat::Y42b,
        (PixelLayout::I422, 10) => VideoFormat::I42210le,
        (PixelLayout::I422, 12) => VideoFormat::I42212le,
        (PixelLayout::I444, 8) => VideoFormat::Y444,
        (PixelLayout::I444, 10) => VideoFormat::Y44410le,
        (PixelLayout::I444, 12) => VideoFormat::Y44412le,
        _ => return None,
    })
}

/// The live decoder, owned by the worker thread.
pub struct Dav1dDecoder {
    decoder: dav1d::Decoder,
    /// The pool output buffers come from, for the layout of the last picture.
    pool: Option<(gst_video::VideoInfo, gst::BufferPool)>,
    zero_copy: Arc<AtomicBool>,
}

fn open_error(e: dav1d::Error) -> CodecError {
    CodecError::new(
        CodecErrorKind::Init,
        format!("libdav1d could not be opened: {e}"),
    )
}

fn to_i64(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

impl Dav1dDecoder {
    /// Opens libdav1d with `setup` (on the worker) and registers its threads as a source of
    /// progress for the watchdog.
    pub fn open(setup: &DecoderSetup, ctx: &WorkerContext) -> Result<(Self, ()), CodecError> {
        let mut s = dav1d::Settings::new();
        s.set_n_threads(setup.n_threads);
        s.set_max_frame_delay(setup.max_frame_delay);
        s.set_apply_grain(setup.apply_grain);
        s.set_operating_point(setup.operating_point);
        s.set_all_layers(setup.all_layers);
        s.set_inloop_filters(dav1d::InloopFilterType::from_bits_truncate(
            setup.inloop_filters,
        ));
        let before = vigil_core::activity::process_threads();
        let decoder = dav1d::Decoder::with_settings(&s).map_err(open_error)?;
        let probe = ThreadCpuProbe::new_threads_since(&before);
        if !probe.is_empty() {
            ctx.set_activity_probe(Box::new(probe));
        }
        Ok((
            Self {
                decoder,
                pool: None,
                zero_copy: setup.zero_copy.clone(),
            },
            (),
        ))
    }

    /// Hands `data` to libdav1d, collecting pictures whenever it asks for it.
    fn feed<T: AsRef<[u8]> + Send + 'static>(
        &mut self,
        data: T,
        pts: Option<u64>,
        duration: Option<u64>,
        index: i64,
        out: &mut Emitter<'_, DecOutput>,
    ) -> bool {
        let mut sent = self
            .decoder
            .send_data(data, Some(index), to_i64(pts), to_i64(duration));
        for _ in 0..MAX_SEND_ROUNDS {
            match sent {
                Ok(()) => return self.fetch(out),
                Err(e) if e.is_again() => {
                    if !self.fetch(out) {
                        return false;
                    }
                    sent = self.decoder.send_pending_data();
                }
                Err(e) => {
                    // The input is lost, not what libdav1d already holds: pictures ready go
                    // out as after any input (as the dav1d tool does).
                    return out.emit(DecOutput::Error(format!(
                        "libdav1d rejected input {index}: {e}"
                    ))) && self.fetch(out);
                }
            }
        }
        // Never seen with libdav1d; drop what it holds rather than loop forever.
        self.decoder.flush();
        out.emit(DecOutput::Error(format!(
            "libdav1d made no progress on input {index}; its queued data was dropped"
        )))
    }

    /// Asks for one picture; emits it or the error. Returns `false` when the worker stops.
    fn fetch(&mut self, out: &mut Emitter<'_, DecOutput>) -> bool {
        match self.decoder.get_picture() {
            Ok(picture) => self.emit_picture(&picture, out),
            Err(e) if e.is_again() => true,
            Err(e) => out.emit(DecOutput::Error(format!("libdav1d could not decode: {e}"))),
        }
    }

    fn emit_picture(&mut self, picture: &dav1d::Picture, out: &mut Emitter<'_, DecOutput>) -> bool {
        let frame = if self.zero_copy.load(Ordering::Relaxed) {
            wrap_picture(picture, true)
        } else if has_default_layout(picture) {
            // libdav1d's planes already sit where GStreamer's default layout puts them (at
            // 1920 wide, say): wrap them without a meta, no copy needed.
            wrap_picture(picture, false)
        } else {
            self.copy_picture(picture)
        };
        match frame {
            Ok(frame) => out.emit(DecOutput::Frame(frame)),
            Err(e) => out.emit(DecOutput::Error(e)),
        }
    }

    /// A buffer for `info` from the pool (re-created when the layout changes).
    fn acquire(&mut self, info: &gst_video::VideoInfo) -> Result<gst::Buffer, String> {
        if self.pool.as_ref().map(|(i, _)| i) != Some(info) {
            if let Some((_, old)) = self.pool.take() {
                let _ = old.set_active(false);
            }
            let caps = info
                .to_caps()
                .map_err(|e| format!("no caps for {info:?}: {e}"))?;
            let pool = gst_video::VideoBufferPool::new().upcast::<gst::BufferPool>();
            let mut config = pool.config();
            config.set_params(Some(&caps), info.size() as u32, 2, 0);
            pool.set_config(config)
                .map_err(|e| format!("output buffer pool refused its configuration: {e}"))?;
            pool.set_active(true)
                .map_err(|e| format!("output buffer pool could not be activated: {e}"))?;
            self.pool = Some((info.clone(), pool));
        }
        let (_, pool) = self.pool.as_ref().expect("pool set above");
        pool.acquire_buffer(None)
            .map_err(|e| format!("no output buffer: {e:?}"))
    }

    /// Copies the visible planes of `picture` into a buffer of the default layout.
    fn copy_picture(&mut self, picture: &dav1d::Picture) -> Result<DecodedFrame, String> {
        let layout = picture.pixel_layout();
        let bpc = picture.bit_depth();
        let format = video_format(layout, bpc)
            .ok_or_else(|| format!("libdav1d returned {layout:?} at {bpc} bits, not supported"))?;
        let (width, height) = (picture.width(), picture.height());
        let info = gst_video::VideoInfo::builder(format, width, height)
            .build()
            .map_err(|e| format!("frame size {width}x{height} is not usable: {e}"))?;
        let mut buffer = self.acquire(&info)?;
        {
            let buf = buffer.get_mut().ok_or("pool buffer is not writable")?;
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                .map_err(|_| "output buffer cannot be mapped".to_owned())?;
            let bytes_per_sample = if bpc > 8 { 2 } else { 1 };
            let planes = if layout == PixelLayout::I400 { 1 } else { 3 };
            for p in 0..planes {
                let component = PlanarImageComponent::from(p);
                let src_stride = picture.stride(component) as usize;
                let src = picture.plane(component);
                let rows = info.comp_height(p as u8) as usize;
                let row_bytes = info.comp_width(p as u8) as usize * bytes_per_sample;
                let dst_stride = frame.plane_stride()[p] as usize;
                let dst = frame
                    .plane_data_mut(p as u32)
                    .map_err(|e| format!("output plane {p}: {e}"))?;
                if rows > 0 && (rows - 1) * src_stride + row_bytes > src.len() {
                    return Err(format!("libdav1d plane {p} is smaller than the frame"));
                }
                for r in 0..rows {
                    dst[r * dst_stride..r * dst_stride + row_bytes]
                        .copy_from_slice(&src[r * src_stride..r * src_stride + row_bytes]);
                }
            }
        }
        Ok(DecodedFrame {
            buffer,
            format,
            width,
            height,
            pts: picture.timestamp().and_then(|t| u64::try_from(t).ok()),
            duration: u64::try_from(picture.duration()).unwrap_or(0),
            index: picture.offset(),
        })
    }
}

/// Whether the planes of `picture`, one after the other, are exactly GStreamer's default
/// layout for its format and size (same strides, same plane sizes).
fn has_default_layout(picture: &dav1d::Picture) -> bool {
    let layout = picture.pixel_layout();
    let Some(format) = video_format(layout, picture.bit_depth()) else {
        return false;
    };
    let Ok(info) = gst_video::VideoInfo::builder(format, picture.width(), picture.height()).build()
    else {
        return false;
    };
    let planes = if layout == PixelLayout::I400 { 1 } else { 3 };
    let mut offset = 0;
    for p in 0..planes {
        let component = PlanarImageComponent::from(p);
        let len = picture.plane(component).len();
        if info.stride()[p] as u32 != picture.stride(component) || info.offset()[p] != offset {
            return false;
        }
        offset += len;
    }
    offset == info.size()
}

/// Wraps the planes of `picture` in a buffer, without a copy: one memory per plane, each
/// keeping the picture alive, with a `GstVideoMeta` giving libdav1d's strides (`with_meta`),
/// or without one when the planes have the default layout.
fn wrap_picture(picture: &dav1d::Picture, with_meta: bool) -> Result<DecodedFrame, String> {
    let layout = picture.pixel_layout();
    let bpc = picture.bit_depth();
    let format = video_format(layout, bpc)
        .ok_or_else(|| format!("libdav1d returned {layout:?} at {bpc} bits, not supported"))?;
    let (width, height) = (picture.width(), picture.height());
    let planes = if layout == PixelLayout::I400 { 1 } else { 3 };
    let mut buffer = gst::Buffer::new();
    let mut offsets = [0usize; 3];
    let mut strides = [0i32; 3];
    {
        let b = buffer.get_mut().expect("new buffer");
        let mut offset = 0;
        for p in 0..planes {
            let component = PlanarImageComponent::from(p);
            let plane = picture.plane(component);
            offsets[p] = offset;
            strides[p] = picture.stride(component) as i32;
            offset += plane.len();
            b.append_memory(gst::Memory::from_slice(plane));
        }
        if with_meta {
            gst_video::VideoMeta::add_full(
                b,
                gst_video::VideoFrameFlags::empty(),
                format,
                width,
                height,
                &offsets[..planes],
                &strides[..planes],
            )
            .map_err(|e| format!("no video meta for {width}x{height} {format:?}: {e}"))?;
        }
    }
    Ok(DecodedFrame {
        buffer,
        format,
        width,
        height,
        pts: picture.timestamp().and_then(|t| u64::try_from(t).ok()),
        duration: u64::try_from(picture.duration()).unwrap_or(0),
        index: picture.offset(),
    })
}

impl Codec for Dav1dDecoder {
    type Input = DecInput;
    type Output = DecOutput;

    fn push(
        &mut self,
        input: DecInput,
        out: &mut Emitter<'_, DecOutput>,
    ) -> Result<(), CodecError> {
        match input {
            DecInput::Header(obus) => {
                self.feed(obus, None, None, -1, out);
            }
            DecInput::Data {
                buffer,
                pts,
                duration,
                index,
            } => match buffer.into_mapped_buffer_readable() {
                Ok(map) => {
                    self.feed(map, pts, duration, index, out);
                }
                Err(_) => {
                    out.emit(DecOutput::Error(format!(
                        "input {index} could not be mapped for reading"
                    )));
                }
            },
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Emitter<'_, DecOutput>) -> Result<(), CodecError> {
        // Data libdav1d did not take yet goes in first.
        for _ in 0..MAX_SEND_ROUNDS {
            match self.decoder.send_pending_data() {
                Ok(()) => break,
                Err(e) if e.is_again() => {
                    if !self.fetch(out) {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if !out.emit(DecOutput::Error(format!("libdav1d could not decode: {e}"))) {
                        return Ok(());
                    }
                    break;
                }
            }
        }
        // Without new data, each get_picture drains the next picture in output order. With
        // frame threads libdav1d drains only from the second call after data was sent (the
        // first one arms it, and answers EAGAIN when no picture is ready): after an input it
        // rejected, nothing was asked of it since, so a first EAGAIN is not the end; two in a
        // row are.
        let mut again = 0;
        for _ in 0..MAX_DRAIN_PICTURES {
            match self.decoder.get_picture() {
                Ok(picture) => {
                    again = 0;
                    if !self.emit_picture(&picture, out) {
                        return Ok(());
                    }
                }
                Err(e) if e.is_again() => {
                    again += 1;
                    if again == 2 {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if !out.emit(DecOutput::Error(format!("libdav1d could not decode: {e}"))) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CodecError> {
        self.decoder.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_delay_follows_libdav1d_1_0() {
        let s = |n_threads, max_frame_delay| DecoderSetup {
            n_threads,
            max_frame_delay,
            apply_grain: true,
            operating_point: 0,
            all_layers: false,
            inloop_filters: 7,
            zero_copy: Arc::default(),
        };
        assert_eq!(frame_delay(&s(1, 0)), 1);
        assert_eq!(frame_delay(&s(2, 0)), 2);
        assert_eq!(frame_delay(&s(4, 0)), 2);
        assert_eq!(frame_delay(&s(5, 0)), 3);
        assert_eq!(frame_delay(&s(100, 0)), 8);
        assert_eq!(frame_delay(&s(4, 1)), 1);
        assert_eq!(frame_delay(&s(2, 6)), 2);
    }

    #[test]
    fn layouts_map_to_raw_formats() {
        assert_eq!(
            video_format(PixelLayout::I420, 10),
            Some(VideoFormat::I42010le)
        );
        assert_eq!(
            video_format(PixelLayout::I444, 12),
            Some(VideoFormat::Y44412le)
        );
        assert_eq!(video_format(PixelLayout::I400, 8), Some(VideoFormat::Gray8));
        assert_eq!(video_format(PixelLayout::I420, 9), None);
    }
}
