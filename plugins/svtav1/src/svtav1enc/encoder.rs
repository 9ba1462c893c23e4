// SPDX-License-Identifier: MPL-2.0
//! The SVT-AV1 encoder as a [`vigil_core::Codec`]: it lives on the worker thread only.
//!
//! SVT-AV1 1.4 has no flush and its blocking `get_packet` returns only after EOS was sent, so
//! packets are polled without blocking while streaming, a drain sends EOS and then blocks (under
//! the watchdog), and a flush drains into the void and recreates the encoder.

use std::ffi::CString;
use std::ptr;
use std::sync::Mutex;

use gst_video::VideoFormat;
use gst_video::prelude::*;
use svt_av1_sys as svt;
use vigil_core::{Codec, CodecError, CodecErrorKind, Emitter, ThreadCpuProbe, WorkerContext};

// Constants of the SVT-AV1 1.4 headers that the bindings do not carry.
/// `EB_BUFFERFLAG_EOS`: the last packet of the stream, or an input that ends it.
pub const EB_BUFFERFLAG_EOS: u32 = 0x0000_0001;
/// `EB_BUFFERFLAG_ERROR_MASK`: the bits an encoder error is signalled in.
pub const EB_BUFFERFLAG_ERROR_MASK: u32 = 0xFFFF_FFF0;
/// `EB_AV1_KEY_PICTURE`.
pub const EB_AV1_KEY_PICTURE: u32 = 3;
/// `EB_AV1_INVALID_PICTURE`: let the encoder choose the picture type.
pub const EB_AV1_INVALID_PICTURE: u32 = 0xFF;
/// `EB_ErrorNone`.
const EB_ERROR_NONE: i32 = 0;
/// `EB_NoErrorEmptyQueue`: no packet is ready.
const EB_NO_ERROR_EMPTY_QUEUE: i32 = 0x8000_2033_u32 as i32;
/// SVT-AV1's smallest accepted frame size.
pub const MIN_SIZE: u32 = 64;
/// SVT-AV1's largest accepted frame width.
pub const MAX_WIDTH: u32 = 16384;
/// SVT-AV1's largest accepted frame height.
pub const MAX_HEIGHT: u32 = 8704;

/// `EbSvtIOFormat` of `EbSvtAv1.h` (1.4), which the bindings do not export: the planes of
/// one input picture. Strides are in samples.
#[repr(C)]
struct EbSvtIoFormat {
    luma: *mut u8,
    cb: *mut u8,
    cr: *mut u8,
    luma_ext: *mut u8,
    cb_ext: *mut u8,
    cr_ext: *mut u8,
    y_stride: u32,
    cr_stride: u32,
    cb_stride: u32,
    width: u32,
    height: u32,
    origin_x: u32,
    origin_y: u32,
    color_fmt: u32,
    bit_depth: u32,
}

/// SVT-AV1's `init`/`deinit` touch process-global state (CPU detection, thread pools,
/// logging): they are serialised across every encoder of the process.
static LIFECYCLE: Mutex<()> = Mutex::new(());

/// Everything needed to create (and recreate) one encoder.
#[derive(Debug, Clone)]
pub struct EncoderSetup {
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// I420 or I420_10LE.
    pub format: VideoFormat,
    /// Frame rate; 0/1 when unknown (then SVT's default is kept).
    pub fps: (u32, u32),
    /// `key=value` settings in the order they are applied (properties first, then the
    /// `parameters-string`), with the SvtAv1EncApp option names.
    pub parameters: Vec<(String, String)>,
    /// Honour forced key frames (SVT 1.4: CRF/CQP only).
    pub force_key_frames: bool,
}

/// One raw frame for the encoder.
pub struct EncInput {
    /// The frame, mapped on the worker.
    pub buffer: gst::Buffer,
    /// Its layout.
    pub info: gst_video::VideoInfo,
    /// The index SVT carries as its `pts`; outputs come back with it.
    pub index: i64,
    /// Ask for a key frame.
    pub force_key: bool,
}

/// One encoded temporal unit.
#[derive(Debug)]
pub struct EncOutput {
    /// The packet (OBUs, starting with a temporal delimiter).
    pub buffer: gst::Buffer,
    /// The index of the frame it shows.
    pub index: i64,
    /// A key frame (random access point).
    pub key: bool,
}

/// What starting an encoder reports: its sequence header OBU.
#[derive(Debug, Clone)]
pub struct StreamHeader {
    /// The OBUs `svt_av1_enc_stream_header` returns.
    pub obus: Vec<u8>,
}

struct Handle(*mut svt::EbComponentType);

// SAFETY: the handle is used by one thread at a time (the worker that owns it).
unsafe impl Send for Handle {}

/// The live encoder, owned by the worker thread.
pub struct SvtEncoder {
    setup: EncoderSetup,
    handle: Option<Handle>,
    /// Pictures sent and not yet returned as packets.
    in_flight: u64,
    /// Pictures sent to the current encoder instance.
    sent: u64,
    eos_sent: bool,
}

fn svt_error(code: i32) -> String {
    match code as u32 {
        0x8000_1000 => "insufficient resources".into(),
        0x8000_1001 => "undefined error".into(),
        0x8000_1004 => "invalid component".into(),
        0x8000_1005 => "bad parameter".into(),
        other => format!("error 0x{other:08x}"),
    }
}

fn check(code: i32, what: &str, kind: CodecErrorKind) -> Result<(), CodecError> {
    if code == EB_ERROR_NONE {
        Ok(())
    } else {
        Err(CodecError::new(
            kind,
            format!("SVT-AV1 {what} failed: {}", svt_error(code)),
        ))
    }
}

/// Finds which setting SVT-AV1 refused, for an error that names what the user set: the
/// configuration is rebuilt from the library defaults, adding one setting at a time and
/// validating after each, on the same (not yet initialised) handle.
fn refused_configuration(handle: *mut svt::EbComponentType, setup: &EncoderSetup) -> String {
    let size = format!("{}x{}", setup.width, setup.height);
    // SAFETY: zeroed is a valid bit pattern; init_handle is not called again, the defaults
    // come from a scratch configuration filled by the parser's defaults below.
    let mut config: svt::EbSvtAv1EncConfiguration = unsafe { std::mem::zeroed() };
    let mut scratch: *mut svt::EbComponentType = ptr::null_mut();
    // SAFETY: out-pointers are valid; the scratch handle only fills the defaults.
    let code = unsafe { svt::svt_av1_enc_init_handle(&mut scratch, ptr::null_mut(), &mut config) };
    if code != EB_ERROR_NONE {
        return format!("SVT-AV1 refused the configuration for {size}");
    }
    // SAFETY: the scratch handle was never initialised: deinit_handle frees it alone.
    unsafe { svt::svt_av1_enc_deinit_handle(scratch) };
    config.source_width = setup.width;
    config.source_height = setup.height;
    config.encoder_bit_depth = if setup.format == VideoFormat::I42010le {
        10
    } else {
        8
    };
    config.encoder_color_format = svt::EbColorFormat::EB_YUV420;
    if setup.fps.0 > 0 && setup.fps.1 > 0 {
        config.frame_rate_numerator = setup.fps.0;
        config.frame_rate_denominator = setup.fps.1;
    }
    let valid = |config: &mut svt::EbSvtAv1EncConfiguration| {
        // SAFETY: the handle is valid and not initialised; set_parameter validates and copies.
        unsafe { svt::svt_av1_enc_set_parameter(handle, config) == EB_ERROR_NONE }
    };
    if !valid(&mut config) {
        return format!(
            "SVT-AV1 refused the frame size {size} and format {:?}",
            setup.format
        );
    }
    for (k, v) in &setup.parameters {
        if apply_parameter(&mut config, k, v).is_err() {
            return format!(
                "SVT-AV1 refused the parameter '{k}={v}' (unknown key or value out of range)"
            );
        }
        if !valid(&mut config) {
            return format!(
                "SVT-AV1 refused '{k}={v}' for {size} with the settings before it (properties, then parameters-string): {}",
                parameter_rule(k)
            );
        }
    }
    config.force_key_frames = u8::from(setup.force_key_frames);
    if !valid(&mut config) {
        return "SVT-AV1 refused forced key frames with this rate control and prediction structure"
            .into();
    }
    format!("SVT-AV1 refused the configuration for {size}")
}

/// What SVT-AV1 1.4 requires of an option, where it is known.
fn parameter_rule(key: &str) -> &'static str {
    match key {
        "tile-columns" | "tile-rows" => {
            "AV1 allows at most 16 tile columns and 128 tiles (tile-columns <= 4, tile-columns + tile-rows <= 7), and tiles no smaller than the picture allows"
        }
        "rc" | "tbr" | "mbr" => {
            "rate control modes have prerequisites (CBR needs low delay; a maximum bitrate needs CRF)"
        }
        "pred-struct" => {
            "the prediction structure must agree with the rate control (CBR: low delay)"
        }
        "lookahead" => "the look-ahead is -1 (auto) or 0 to 120 frames",
        _ => "see SvtAv1EncApp --help for its rule",
    }
}

/// Applies `key=value` through SVT's own parser, so every option means what it means to
/// SvtAv1EncApp.
fn apply_parameter(
    config: &mut svt::EbSvtAv1EncConfiguration,
    key: &str,
    value: &str,
) -> Result<(), CodecError> {
    let (Ok(k), Ok(v)) = (CString::new(key), CString::new(value)) else {
        return Err(CodecError::new(
            CodecErrorKind::Settings,
            format!("SVT-AV1 parameter '{key}={value}' contains a NUL byte"),
        ));
    };
    // SAFETY: `config` is a valid configuration; the strings are NUL-terminated.
    let code = unsafe { svt::svt_av1_enc_parse_parameter(config, k.as_ptr(), v.as_ptr()) };
    if code != EB_ERROR_NONE {
        return Err(CodecError::new(
            CodecErrorKind::Settings,
            format!(
                "SVT-AV1 refused the parameter '{key}={value}' (unknown key or value out of range)"
            ),
        ));
    }
    Ok(())
}

impl SvtEncoder {
    /// Creates the encoder (on the worker) and registers its threads as an activity probe.
    pub fn create(
        setup: EncoderSetup,
        ctx: &WorkerContext,
    ) -> Result<(Self, StreamHeader), CodecError> {
        // The threads SVT-AV1 creates for this encoder, and only those: its start is
        // serialised with every other encoder's (so two encoders starting at once do not count
        // each other's threads), and a thread counts only if it carries this worker's name,
        // which is unique per encoder (it was created from this worker thread, not by another
        // element or encoder meanwhile).
        let (handle, header, probe) = {
            let global = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
            let before = vigil_core::activity::process_threads();
            let (handle, header) = Self::init_locked(&setup, &global)?;
            let probe = ThreadCpuProbe::new_threads_since_from_here(&before);
            (handle, header, probe)
        };
        if !probe.is_empty() {
            ctx.set_activity_probe(Box::new(probe));
        }
        Ok((
            Self {
                setup,
                handle: Some(handle),
                in_flight: 0,
                sent: 0,
                eos_sent: false,
            },
            header,
        ))
    }

    fn init(setup: &EncoderSetup) -> Result<(Handle, StreamHeader), CodecError> {
        let global = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
        Self::init_locked(setup, &global)
    }

    /// `init` with the lifecycle lock already held by the caller.
    fn init_locked(
        setup: &EncoderSetup,
        _global: &std::sync::MutexGuard<'_, ()>,
    ) -> Result<(Handle, StreamHeader), CodecError> {
        let mut handle: *mut svt::EbComponentType = ptr::null_mut();
        // SAFETY: zeroed is a valid bit pattern for this plain C struct; init_handle fills it
        // with the library defaults.
        let mut config: svt::EbSvtAv1EncConfiguration = unsafe { std::mem::zeroed() };
        // SAFETY: out-pointers are valid.
        let code =
            unsafe { svt::svt_av1_enc_init_handle(&mut handle, ptr::null_mut(), &mut config) };
        check(code, "handle creation", CodecErrorKind::Init)?;
        let handle = Handle(handle);
        let result = (|| {
            config.source_width = setup.width;
            config.source_height = setup.height;
            config.encoder_bit_depth = if setup.format == VideoFormat::I42010le {
                10
            } else {
                8
            };
            config.encoder_color_format = svt::EbColorFormat::EB_YUV420;
            if setup.fps.0 > 0 && setup.fps.1 > 0 {
                config.frame_rate_numerator = setup.fps.0;
                config.frame_rate_denominator = setup.fps.1;
            }
            for (k, v) in &setup.parameters {
                apply_parameter(&mut config, k, v)?;
            }
            config.force_key_frames = u8::from(setup.force_key_frames);
            // SAFETY: handle and config are valid.
            let code = unsafe { svt::svt_av1_enc_set_parameter(handle.0, &mut config) };
            if code != EB_ERROR_NONE {
                return Err(CodecError::new(
                    CodecErrorKind::Settings,
                    refused_configuration(handle.0, setup),
                ));
            }
            // SAFETY: handle is configured.
            let code = unsafe { svt::svt_av1_enc_init(handle.0) };
            check(code, "initialisation", CodecErrorKind::Init)?;
            let mut header: *mut svt::EbBufferHeaderType = ptr::null_mut();
            // SAFETY: handle is initialised; header is an out-pointer released below.
            let code = unsafe { svt::svt_av1_enc_stream_header(handle.0, &mut header) };
            check(code, "stream header", CodecErrorKind::Init)?;
            // SAFETY: the library returned a valid buffer of n_filled_len bytes.
            let obus = unsafe {
                let h = &*header;
                let v = std::slice::from_raw_parts(h.p_buffer, h.n_filled_len as usize).to_vec();
                svt::svt_av1_enc_stream_header_release(header);
                v
            };
            Ok(StreamHeader { obus })
        })();
        match result {
            Ok(header) => Ok((handle, header)),
            Err(e) => {
                // SAFETY: the handle was created and is not used elsewhere.
                unsafe {
                    svt::svt_av1_enc_deinit(handle.0);
                    svt::svt_av1_enc_deinit_handle(handle.0);
                }
                Err(e)
            }
        }
    }

    /// Ends the encoder the way SVT-AV1 1.4 needs: its `deinit` waits for the end of the
    /// stream, and blocks for ever unless EOS was sent after at least one picture. So an
    /// encoder that never saw a picture is given one blank picture first, EOS is sent if it
    /// was not, and `deinit` then returns once the library has finished (this runs on the
    /// worker, under the watchdog of the drain, flush or shutdown that asked for it).
    fn destroy(&mut self) {
        if let Some(h) = self.handle.take() {
            let _global = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
            let mut ended = self.eos_sent;
            if !ended {
                // SAFETY: the handle is ours and no call on it is in progress.
                let ready = self.sent > 0 || unsafe { send_blank_picture(h.0, &self.setup) };
                // SAFETY: as above.
                ended = ready && unsafe { send_eos_to(h.0) } == EB_ERROR_NONE;
            }
            if ended {
                // SAFETY: the handle is ours, EOS was sent after a picture: deinit returns.
                unsafe {
                    svt::svt_av1_enc_deinit(h.0);
                    svt::svt_av1_enc_deinit_handle(h.0);
                }
            } else {
                // The library refused the pictures that would let deinit return: leaking
                // the handle is the only teardown that cannot block.
                gst::warning!(
                    gst::CAT_RUST,
                    "SVT-AV1 refused the end of stream; its encoder instance is leaked"
                );
                let _leaked = h.0; // the raw handle is not freed: the instance is leaked
            }
        }
        self.in_flight = 0;
        self.sent = 0;
        self.eos_sent = false;
    }

    fn handle(&mut self) -> Result<*mut svt::EbComponentType, CodecError> {
        if self.handle.is_none() {
            // After a drain or a flush the encoder is recreated on first use.
            let (h, _) = Self::init(&self.setup)?;
            self.handle = Some(h);
        }
        Ok(self.handle.as_ref().map(|h| h.0).unwrap_or(ptr::null_mut()))
    }

    /// Fetches one packet; `blocking` only after EOS was sent. Returns `None` when no packet
    /// is ready, or (after EOS) when the stream ended.
    fn get_packet(&mut self, blocking: bool) -> Result<Option<(EncOutput, bool)>, CodecError> {
        debug_assert!(!blocking || self.eos_sent);
        let h = self.handle()?;
        let mut p: *mut svt::EbBufferHeaderType = ptr::null_mut();
        // SAFETY: the handle is valid; `p` is an out-pointer released below.
        let code = unsafe { svt::svt_av1_enc_get_packet(h, &mut p, u8::from(blocking)) };
        if code == EB_NO_ERROR_EMPTY_QUEUE {
            return Ok(None);
        }
        check(code, "packet retrieval", CodecErrorKind::Encode)?;
        // SAFETY: the library returned a valid packet that we release after copying.
        let (out, eos) = unsafe {
            let pk = &*p;
            let flags = pk.flags;
            if flags & EB_BUFFERFLAG_ERROR_MASK != 0 {
                svt::svt_av1_enc_release_out_buffer(&mut p);
                return Err(CodecError::new(
                    CodecErrorKind::Encode,
                    format!("SVT-AV1 signalled an encoding error (flags 0x{flags:08x})"),
                ));
            }
            let data = if pk.n_filled_len > 0 && !pk.p_buffer.is_null() {
                std::slice::from_raw_parts(pk.p_buffer, pk.n_filled_len as usize).to_vec()
            } else {
                Vec::new()
            };
            let out = EncOutput {
                buffer: gst::Buffer::from_mut_slice(data),
                index: pk.pts,
                key: pk.pic_type == EB_AV1_KEY_PICTURE,
            };
            let eos = flags & EB_BUFFERFLAG_EOS != 0;
            svt::svt_av1_enc_release_out_buffer(&mut p);
            (out, eos)
        };
        Ok(Some((out, eos)))
    }

    fn emit_packet(&mut self, out: EncOutput, emitter: &mut Emitter<'_, EncOutput>) {
        if out.buffer.size() > 0 {
            self.in_flight = self.in_flight.saturating_sub(1);
            emitter.emit(out);
        }
    }

    fn send_eos(&mut self) -> Result<(), CodecError> {
        let h = self.handle()?;
        // SAFETY: the handle is valid and used by this thread only.
        let code = unsafe { send_eos_to(h) };
        check(code, "end of stream", CodecErrorKind::Encode)?;
        self.eos_sent = true;
        Ok(())
    }

    /// Sends EOS and takes every packet to the end of the stream.
    fn finish(
        &mut self,
        mut on_packet: impl FnMut(&mut Self, EncOutput),
    ) -> Result<(), CodecError> {
        if self.handle.is_none() {
            return Ok(());
        }
        if self.sent == 0 {
            // Nothing was encoded: there is no stream to end and no packet to wait for, and
            // the encoder, still fresh, takes input again as it is (an empty run ends at
            // once; the teardown happens at stop, under its bound).
            return Ok(());
        }
        if !self.eos_sent {
            self.send_eos()?;
        }
        while let Some((out, eos)) = self.get_packet(true)? {
            on_packet(self, out);
            if eos {
                break;
            }
        }
        self.destroy();
        Ok(())
    }
}

impl Drop for SvtEncoder {
    fn drop(&mut self) {
        // Runs on the worker, under the watchdog of the shutdown: `destroy` ends the stream
        // first, so deinit does not block.
        self.destroy();
    }
}

/// Sends SVT-AV1's end of stream.
///
/// # Safety
/// `h` is a live, initialised encoder handle used by this thread only.
unsafe fn send_eos_to(h: *mut svt::EbComponentType) -> i32 {
    // SAFETY: a zeroed header with the EOS flag is what SVT expects to end the stream.
    unsafe {
        let mut eos: svt::EbBufferHeaderType = std::mem::zeroed();
        eos.size = std::mem::size_of::<svt::EbBufferHeaderType>() as u32;
        eos.flags = EB_BUFFERFLAG_EOS;
        eos.pic_type = EB_AV1_INVALID_PICTURE as _;
        svt::svt_av1_enc_send_picture(h, &mut eos)
    }
}

/// Sends one black picture of the configured size (SVT copies it during the call): an encoder
/// must have seen a picture before its end of stream lets `deinit` return.
///
/// # Safety
/// `h` is a live, initialised encoder handle used by this thread only.
unsafe fn send_blank_picture(h: *mut svt::EbComponentType, setup: &EncoderSetup) -> bool {
    let bytes = if setup.format == VideoFormat::I42010le {
        2
    } else {
        1
    };
    let (w, h_px) = (setup.width as usize, setup.height as usize);
    let (cw, ch) = (w.div_ceil(2), h_px.div_ceil(2));
    let luma_len = w * h_px * bytes;
    let chroma_len = cw * ch * bytes;
    let mut data = vec![0u8; luma_len + 2 * chroma_len];
    // Mid-grey chroma, black luma (16) in the sample size of the format.
    let fill = |dst: &mut [u8], value: u16| {
        if bytes == 2 {
            for pair in dst.chunks_exact_mut(2) {
                pair.copy_from_slice(&value.to_le_bytes());
            }
        } else {
            dst.fill(value as u8);
        }
    };
    let (luma, chroma) = data.split_at_mut(luma_len);
    fill(luma, if bytes == 2 { 64 } else { 16 });
    fill(chroma, if bytes == 2 { 512 } else { 128 });
    let base = data.as_mut_ptr();
    // SAFETY: the planes lie inside `data`, which outlives the call; SVT copies them.
    let code = unsafe {
        let mut io: EbSvtIoFormat = std::mem::zeroed();
        io.luma = base;
        io.cb = base.add(luma_len);
        io.cr = base.add(luma_len + chroma_len);
        io.y_stride = w as u32;
        io.cb_stride = cw as u32;
        io.cr_stride = cw as u32;
        io.width = setup.width;
        io.height = setup.height;
        io.color_fmt = svt::EbColorFormat::EB_YUV420;
        io.bit_depth = if bytes == 2 { 10 } else { 8 };
        let mut header: svt::EbBufferHeaderType = std::mem::zeroed();
        header.size = std::mem::size_of::<svt::EbBufferHeaderType>() as u32;
        header.p_buffer = (&mut io as *mut EbSvtIoFormat).cast();
        header.n_filled_len = data.len() as u32;
        header.n_alloc_len = header.n_filled_len;
        header.pic_type = EB_AV1_INVALID_PICTURE as _;
        svt::svt_av1_enc_send_picture(h, &mut header)
    };
    code == EB_ERROR_NONE
}

impl Codec for SvtEncoder {
    type Input = EncInput;
    type Output = EncOutput;

    fn push(
        &mut self,
        input: EncInput,
        out: &mut Emitter<'_, EncOutput>,
    ) -> Result<(), CodecError> {
        let h = self.handle()?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&input.buffer, &input.info)
            .map_err(|_| {
                let (got, want) = (input.buffer.size(), input.info.size());
                let text = if input.buffer.meta::<gst_video::VideoMeta>().is_none() && got < want
                {
                    format!(
                        "an input buffer of {got} bytes is smaller than a {}x{} {} frame ({want} bytes): the buffers do not match the caps",
                        input.info.width(),
                        input.info.height(),
                        input.info.format().to_str()
                    )
                } else {
                    format!(
                        "could not map an input frame of {got} bytes for reading as {}x{} {}",
                        input.info.width(),
                        input.info.height(),
                        input.info.format().to_str()
                    )
                };
                CodecError::new(CodecErrorKind::Format, text)
            })?;
        let bytes_per_sample = if input.info.format() == VideoFormat::I42010le {
            2
        } else {
            1
        };
        let stride = |p: usize| (frame.plane_stride()[p] as u32) / bytes_per_sample;
        let plane = |p: usize| {
            frame
                .plane_data(p as u32)
                .map(|d| d.as_ptr() as *mut u8)
                .unwrap_or(ptr::null_mut())
        };
        // SAFETY: SVT copies the planes during send_picture; the mapping outlives the call.
        let code = unsafe {
            let mut io: EbSvtIoFormat = std::mem::zeroed();
            io.luma = plane(0);
            io.cb = plane(1);
            io.cr = plane(2);
            io.y_stride = stride(0);
            io.cb_stride = stride(1);
            io.cr_stride = stride(2);
            io.width = self.setup.width;
            io.height = self.setup.height;
            io.origin_x = 0;
            io.origin_y = 0;
            io.color_fmt = svt::EbColorFormat::EB_YUV420;
            io.bit_depth = if bytes_per_sample == 2 { 10 } else { 8 };
            let mut header: svt::EbBufferHeaderType = std::mem::zeroed();
            header.size = std::mem::size_of::<svt::EbBufferHeaderType>() as u32;
            header.p_buffer = (&mut io as *mut EbSvtIoFormat).cast();
            header.n_filled_len = frame.buffer().size() as u32;
            header.n_alloc_len = header.n_filled_len;
            header.pts = input.index;
            header.pic_type = if input.force_key {
                EB_AV1_KEY_PICTURE as _
            } else {
                EB_AV1_INVALID_PICTURE as _
            };
            svt::svt_av1_enc_send_picture(h, &mut header)
        };
        drop(frame);
        check(code, "picture submission", CodecErrorKind::Encode)?;
        self.in_flight += 1;
        self.sent += 1;
        self.poll(out)
    }

    fn in_flight(&self) -> bool {
        self.in_flight > 0 && !self.eos_sent
    }

    fn poll(&mut self, out: &mut Emitter<'_, EncOutput>) -> Result<(), CodecError> {
        if self.handle.is_none() || self.eos_sent {
            return Ok(());
        }
        while let Some((packet, _)) = self.get_packet(false)? {
            self.emit_packet(packet, out);
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Emitter<'_, EncOutput>) -> Result<(), CodecError> {
        self.finish(|this, packet| this.emit_packet(packet, out))
    }

    fn flush(&mut self) -> Result<(), CodecError> {
        // No flush in SVT 1.4: end the stream into the void, then recreate on next use.
        self.finish(|_, _| {})
    }
}
