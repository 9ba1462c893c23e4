// SPDX-License-Identifier: MPL-2.0
//! What an input's content looks like, measured cheaply on the data the output already
//! converted: the brightest subsampled luma value and a hash of subsampled rows per picture,
//! the RMS level per audio buffer. Pure functions and a clock-free tracker (time is passed
//! in), so every rule is unit-tested without a pipeline.

use std::time::{Duration, Instant};

/// Samples per row and rows per picture looked at, at most (a 1280x720 picture: every 8th
/// pixel of every 8th row, 14 400 samples).
const SAMPLES_PER_ROW: usize = 160;
const ROWS: usize = 90;

/// One picture, measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PictureStats {
    /// The brightest luma sample (8-bit scale).
    pub max_luma: u8,
    /// A hash of the subsampled luma: equal pictures have equal hashes.
    pub hash: u64,
}

/// Measures the luma component of a picture: `data` holds `height` rows of `stride` bytes,
/// a luma sample every `pixel_stride` bytes, `width` samples per row (8-bit samples; for
/// deeper ones pass the most significant byte's offset in `data` and the sample stride).
pub(crate) fn picture_stats(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    pixel_stride: usize,
) -> Option<PictureStats> {
    if width == 0 || height == 0 || pixel_stride == 0 {
        return None;
    }
    let col_step = width.div_ceil(SAMPLES_PER_ROW).max(1);
    let row_step = height.div_ceil(ROWS).max(1);
    let mut max_luma = 0u8;
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for row in (0..height).step_by(row_step) {
        let start = row * stride;
        for col in (0..width).step_by(col_step) {
            let v = *data.get(start + col * pixel_stride)?;
            max_luma = max_luma.max(v);
            hash = (hash ^ u64::from(v)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Some(PictureStats { max_luma, hash })
}

/// The RMS level of interleaved little-endian samples in dBFS (`-inf` for digital silence), for
/// the formats the audio output can be set to; `None` for a format it does not measure.
pub(crate) fn audio_level_db(data: &[u8], format: &str) -> Option<f64> {
    let (sum, n) = match format {
        "S16LE" => sum_squares(data.chunks_exact(2), |c| {
            f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0
        }),
        "S32LE" => sum_squares(data.chunks_exact(4), |c| {
            f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])) / 2_147_483_648.0
        }),
        "F32LE" => sum_squares(data.chunks_exact(4), |c| {
            f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        }),
        "F64LE" => sum_squares(data.chunks_exact(8), |c| {
            f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
        }),
        "U8" => sum_squares(data.chunks_exact(1), |c| (f64::from(c[0]) - 128.0) / 128.0),
        _ => return None,
    };
    if n == 0 {
        return None;
    }
    let rms = (sum / n as f64).sqrt();
    Some(if rms > 0.0 {
        20.0 * rms.log10()
    } else {
        f64::NEG_INFINITY
    })
}

fn sum_squares<'a>(
    samples: impl Iterator<Item = &'a [u8]>,
    value: impl Fn(&[u8]) -> f64,
) -> (f64, usize) {
    samples.fold((0.0, 0), |(s, n), c| {
        let v = value(c);
        (s + v * v, n + 1)
    })
}

/// How long an input's picture has been black or unchanged and its audio silent, from the
/// measurements of what it delivered.
#[derive(Debug, Default, Clone)]
pub(crate) struct ContentTrack {
    black_since: Option<Instant>,
    last_hash: Option<u64>,
    unchanged_since: Option<Instant>,
    silent_since: Option<Instant>,
}

impl ContentTrack {
    /// A picture arrived at `now`; black when every sample is below `black_threshold`.
    pub fn picture(&mut self, now: Instant, stats: Option<PictureStats>, black_threshold: u8) {
        let Some(stats) = stats else {
            return;
        };
        if stats.max_luma < black_threshold {
            self.black_since.get_or_insert(now);
        } else {
            self.black_since = None;
        }
        if self.last_hash != Some(stats.hash) {
            self.last_hash = Some(stats.hash);
            self.unchanged_since = Some(now);
        }
    }

    /// Audio at `level_db` arrived at `now`; silent below `silence_db`.
    pub fn audio(&mut self, now: Instant, level_db: Option<f64>, silence_db: f64) {
        match level_db {
            Some(db) if db < silence_db => {
                self.silent_since.get_or_insert(now);
            }
            Some(_) => self.silent_since = None,
            None => {}
        }
    }

    /// How long the picture has been black (zero when it is not).
    pub fn black_for(&self, now: Instant) -> Duration {
        since(self.black_since, now)
    }

    /// How long the picture has not changed (zero before the first picture).
    pub fn frozen_for(&self, now: Instant) -> Duration {
        since(self.unchanged_since, now)
    }

    /// How long the audio has been silent (zero when it is not).
    pub fn silent_for(&self, now: Instant) -> Duration {
        since(self.silent_since, now)
    }
}

fn since(t: Option<Instant>, now: Instant) -> Duration {
    t.map(|t| now.saturating_duration_since(t))
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect()
    }

    #[test]
    fn black_needs_every_sample_below_the_threshold() {
        let black = picture(1280, 720, |_, _| 16);
        let s = picture_stats(&black, 1280, 720, 1280, 1).unwrap();
        assert_eq!(s.max_luma, 16);
        // One bright block (a logo) is enough not to be black.
        let logo = picture(1280, 720, |x, y| if x < 64 && y < 64 { 200 } else { 16 });
        assert_eq!(
            picture_stats(&logo, 1280, 720, 1280, 1).unwrap().max_luma,
            200
        );
    }

    #[test]
    fn equal_pictures_hash_equal_and_a_moving_one_does_not() {
        let a = picture(640, 360, |x, y| ((x + y) % 251) as u8);
        let b = picture(640, 360, |x, y| ((x + y + 8) % 251) as u8);
        let sa = picture_stats(&a, 640, 360, 640, 1).unwrap();
        assert_eq!(sa, picture_stats(&a.clone(), 640, 360, 640, 1).unwrap());
        assert_ne!(sa.hash, picture_stats(&b, 640, 360, 640, 1).unwrap().hash);
    }

    #[test]
    fn packed_luma_and_padding_are_followed() {
        // YUY2-like: luma every 2 bytes, rows padded to 1400 bytes.
        let mut data = vec![255u8; 1400 * 100];
        for y in 0..100 {
            for x in 0..640 {
                data[y * 1400 + x * 2] = 10;
            }
        }
        assert_eq!(
            picture_stats(&data, 640, 100, 1400, 2).unwrap().max_luma,
            10
        );
        assert!(picture_stats(&data[..10], 640, 100, 1400, 2).is_none());
    }

    #[test]
    fn audio_levels_in_dbfs() {
        let silence = vec![0u8; 960 * 4];
        assert_eq!(audio_level_db(&silence, "S16LE"), Some(f64::NEG_INFINITY));
        // A full-scale square wave is 0 dBFS; half scale is about -6 dBFS.
        let full: Vec<u8> = (0..960)
            .flat_map(|i| if i % 2 == 0 { i16::MAX } else { -i16::MAX }.to_le_bytes())
            .collect();
        assert!(audio_level_db(&full, "S16LE").unwrap() > -0.01);
        let half: Vec<u8> = (0..960).flat_map(|_| 0.5f32.to_le_bytes()).collect();
        assert!((audio_level_db(&half, "F32LE").unwrap() + 6.02).abs() < 0.01);
        assert_eq!(audio_level_db(&half, "S24_32BE"), None);
    }

    #[test]
    fn the_tracker_times_black_freeze_and_silence() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut c = ContentTrack::default();
        let dark = PictureStats {
            max_luma: 20,
            hash: 1,
        };
        let bright = PictureStats {
            max_luma: 200,
            hash: 2,
        };
        c.picture(ms(0), Some(dark), 32);
        c.picture(ms(500), Some(dark), 32);
        assert_eq!(c.black_for(ms(1000)), Duration::from_millis(1000));
        assert_eq!(c.frozen_for(ms(1000)), Duration::from_millis(1000));
        c.picture(ms(1000), Some(bright), 32);
        assert_eq!(c.black_for(ms(1100)), Duration::ZERO);
        assert_eq!(c.frozen_for(ms(1100)), Duration::from_millis(100));
        c.audio(ms(0), Some(f64::NEG_INFINITY), -50.0);
        c.audio(ms(300), Some(-70.0), -50.0);
        assert_eq!(c.silent_for(ms(400)), Duration::from_millis(400));
        c.audio(ms(400), Some(-20.0), -50.0);
        assert_eq!(c.silent_for(ms(500)), Duration::ZERO);
    }
}
