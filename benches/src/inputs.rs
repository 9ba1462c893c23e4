// SPDX-License-Identifier: MPL-2.0
//! The inputs every case of a comparison shares: raw Y4M clips (ffmpeg's `testsrc2`, moving
//! synthetic content) and AV1 streams encoded from them. Made once and kept in the work folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::tools::run_timed;

/// A raw 8-bit 4:2:0 clip.
#[derive(Debug, Clone)]
pub struct Y4m {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
}

impl Y4m {
    /// Bytes of one frame record (`FRAME\n` and the planes).
    pub fn frame_record_bytes(&self) -> u64 {
        6 + u64::from(self.width) * u64::from(self.height) * 3 / 2
    }

    pub fn label(&self) -> String {
        format!("{}x{}", self.width, self.height)
    }
}

fn lavfi(width: u32, height: u32) -> String {
    format!("testsrc2=size={width}x{height}:rate=30")
}

/// The clip `width`x`height` with `frames` frames at 30 fps, made if missing.
pub fn y4m(work: &Path, width: u32, height: u32, frames: u64) -> Result<Y4m, String> {
    let path = work.join(format!("testsrc2-{width}x{height}-{frames}.y4m"));
    if !path.is_file() {
        let tmp = path.with_extension("tmp.y4m");
        run_timed(
            Command::new("ffmpeg")
                .args(["-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i"])
                .arg(lavfi(width, height))
                .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p"])
                .arg(&tmp),
            &work.join("ffmpeg-y4m.log"),
            Duration::from_secs(600),
        )?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    Ok(Y4m {
        path,
        width,
        height,
        frames,
    })
}

/// An AV1 stream (IVF) of `frames` frames of `testsrc2` at `width`x`height`, encoded with
/// SVT-AV1 (ffmpeg's libsvtav1, preset 10, CRF 30), made if missing.
pub fn av1_ivf(work: &Path, width: u32, height: u32, frames: u64) -> Result<PathBuf, String> {
    let path = work.join(format!("testsrc2-{width}x{height}-{frames}-svtav1.ivf"));
    if !path.is_file() {
        let tmp = path.with_extension("tmp.ivf");
        run_timed(
            Command::new("ffmpeg")
                .args(["-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i"])
                .arg(lavfi(width, height))
                .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p"])
                .args([
                    "-c:v",
                    "libsvtav1",
                    "-preset",
                    "10",
                    "-crf",
                    "30",
                    "-g",
                    "150",
                ])
                .args(["-f", "ivf"])
                .arg(&tmp),
            &work.join("ffmpeg-av1.log"),
            Duration::from_secs(900),
        )?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    Ok(path)
}
