// SPDX-License-Identifier: MPL-2.0
//! Just enough AV1 bitstream reading for caps: OBU headers, the sequence header (profile,
//! level, tier, bit depth, chroma, colour description) and the `av1C` codec configuration
//! record that `mp4mux` and `matroskamux` expect in `codec_data`.

/// OBU type of a sequence header.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type of a temporal delimiter.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// OBU type of metadata.
pub const OBU_METADATA: u8 = 5;

/// HDR metadata carried in metadata OBUs (AV1 spec 6.7.3 and 6.7.4), in the units of the
/// bitstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HdrMetadata {
    /// `max_cll`, `max_fall` (cd/m²) of a `METADATA_TYPE_HDR_CLL`.
    pub content_light: Option<(u16, u16)>,
    /// A `METADATA_TYPE_HDR_MDCV`.
    pub mastering_display: Option<MasteringDisplay>,
}

/// Mastering display colour volume as AV1 codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MasteringDisplay {
    /// Red, green, blue chromaticities (x, y), 0.16 fixed point.
    pub primaries: [(u16, u16); 3],
    /// White point (x, y), 0.16 fixed point.
    pub white_point: (u16, u16),
    /// Maximum luminance, 24.8 fixed point cd/m².
    pub luminance_max: u32,
    /// Minimum luminance, 18.14 fixed point cd/m².
    pub luminance_min: u32,
}

impl HdrMetadata {
    /// Collects the HDR metadata OBUs of a buffer of OBUs (later ones win).
    pub fn scan(data: &[u8]) -> Self {
        let mut hdr = Self::default();
        let Ok(obus) = parse_obus(data) else {
            return hdr;
        };
        for obu in obus.iter().filter(|o| o.obu_type == OBU_METADATA) {
            let payload = &data[obu.payload_start..obu.end];
            let Some((kind, n)) = read_leb128(payload) else {
                continue;
            };
            let body = &payload[n..];
            let u16_at = |i: usize| body.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let u32_at = |i: usize| {
                body.get(i..i + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match kind {
                1 => {
                    if let (Some(cll), Some(fall)) = (u16_at(0), u16_at(2)) {
                        hdr.content_light = Some((cll, fall));
                    }
                }
                2 => {
                    let p = |i: usize| Some((u16_at(4 * i)?, u16_at(4 * i + 2)?));
                    if let (Some(r), Some(g), Some(b), Some(wx), Some(wy), Some(max), Some(min)) = (
                        p(0),
                        p(1),
                        p(2),
                        u16_at(12),
                        u16_at(14),
                        u32_at(16),
                        u32_at(20),
                    ) {
                        hdr.mastering_display = Some(MasteringDisplay {
                            primaries: [r, g, b],
                            white_point: (wx, wy),
                            luminance_max: max,
                            luminance_min: min,
                        });
                    }
                }
                _ => {}
            }
        }
        hdr
    }

    /// Whether it carries anything.
    pub fn is_empty(&self) -> bool {
        self.content_light.is_none() && self.mastering_display.is_none()
    }
}

/// A bitstream that cannot be read, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Error(pub String);

impl std::fmt::Display for Av1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Av1Error {}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bits(&mut self, n: u32) -> Result<u32, Av1Error> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self
                .data
                .get(self.pos / 8)
                .ok_or_else(|| Av1Error("sequence header is truncated".into()))?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool, Av1Error> {
        Ok(self.bits(1)? == 1)
    }

    fn uvlc(&mut self) -> Result<u32, Av1Error> {
        let mut leading = 0;
        while !self.flag()? {
            leading += 1;
            if leading >= 32 {
                return Err(Av1Error("uvlc value out of range".into()));
            }
        }
        Ok(self.bits(leading)? + ((1u32 << leading) - 1))
    }
}

/// Reads a LEB128 value; returns it and its length in bytes.
pub fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let b = *data.get(i)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// One OBU in a buffer: its type and the byte ranges of the whole OBU and of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu {
    /// `obu_type`.
    pub obu_type: u8,
    /// Start of the OBU (header) in the buffer.
    pub start: usize,
    /// Start of the payload.
    pub payload_start: usize,
    /// End of the OBU (exclusive).
    pub end: usize,
}

/// Splits a buffer of low-overhead OBUs (each with `obu_has_size_field`).
pub fn parse_obus(data: &[u8]) -> Result<Vec<Obu>, Av1Error> {
    let mut obus = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data[pos];
        if header & 0x80 != 0 {
            return Err(Av1Error(format!("OBU at byte {pos}: forbidden bit is set")));
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut p = pos + 1 + usize::from(has_extension);
        if p > data.len() {
            return Err(Av1Error(format!("OBU at byte {pos}: header is truncated")));
        }
        let size = if has_size {
            let (size, n) = read_leb128(&data[p..])
                .ok_or_else(|| Av1Error(format!("OBU at byte {pos}: bad size field")))?;
            p += n;
            usize::try_from(size).map_err(|_| Av1Error("OBU size overflows".into()))?
        } else {
            data.len() - p
        };
        let end = p
            .checked_add(size)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                Av1Error(format!(
                    "OBU at byte {pos}: size {size} runs past the buffer"
                ))
            })?;
        obus.push(Obu {
            obu_type,
            start: pos,
            payload_start: p,
            end,
        });
        pos = end;
    }
    Ok(obus)
}

/// The fields of a sequence header that caps and `av1C` need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceHeader {
    /// `seq_profile` (0 main, 1 high, 2 professional).
    pub profile: u8,
    /// `seq_level_idx[0]`.
    pub level_idx: u8,
    /// `seq_tier[0]`.
    pub tier: u8,
    /// `max_frame_width_minus_1 + 1`.
    pub max_width: u32,
    /// `max_frame_height_minus_1 + 1`.
    pub max_height: u32,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// `mono_chrome`.
    pub monochrome: bool,
    /// `subsampling_x`.
    pub subsampling_x: bool,
    /// `subsampling_y`.
    pub subsampling_y: bool,
    /// `chroma_sample_position`.
    pub chroma_sample_position: u8,
    /// `color_primaries`, `transfer_characteristics`, `matrix_coefficients` when present.
    pub color_description: Option<(u8, u8, u8)>,
    /// `color_range` (true = full).
    pub full_range: bool,
    /// `film_grain_params_present`.
    pub film_grain: bool,
    /// From `timing_info` with a picture interval: one picture lasts `.0 / .1` seconds.
    pub frame_duration: Option<(u64, u64)>,
}

impl SequenceHeader {
    /// Parses the payload of a sequence header OBU.
    pub fn parse(payload: &[u8]) -> Result<Self, Av1Error> {
        let mut r = BitReader::new(payload);
        let mut sh = SequenceHeader {
            profile: r.bits(3)? as u8,
            ..Default::default()
        };
        if sh.profile > 2 {
            return Err(Av1Error(format!(
                "seq_profile {} is not defined",
                sh.profile
            )));
        }
        let _still_picture = r.flag()?;
        let reduced = r.flag()?;
        if reduced {
            sh.level_idx = r.bits(5)? as u8;
        } else {
            let timing_info_present = r.flag()?;
            let mut decoder_model_info_present = false;
            let mut buffer_delay_length = 0;
            if timing_info_present {
                let units = r.bits(32)?;
                let time_scale = r.bits(32)?;
                let ticks = if r.flag()? {
                    u64::from(r.uvlc()?) + 1
                } else {
                    1
                };
                if units > 0 && time_scale > 0 {
                    // One picture lasts `units * ticks / time_scale` seconds.
                    sh.frame_duration = Some((u64::from(units) * ticks, u64::from(time_scale)));
                }
                decoder_model_info_present = r.flag()?;
                if decoder_model_info_present {
                    buffer_delay_length = r.bits(5)? + 1;
                    r.bits(32)?;
                    r.bits(5)?;
                    r.bits(5)?;
                }
            }
            let initial_display_delay_present = r.flag()?;
            let count = r.bits(5)? + 1;
            for i in 0..count {
                r.bits(12)?;
                let level = r.bits(5)? as u8;
                let tier = if level > 7 { r.bits(1)? as u8 } else { 0 };
                if i == 0 {
                    sh.level_idx = level;
                    sh.tier = tier;
                }
                if decoder_model_info_present && r.flag()? {
                    r.bits(buffer_delay_length)?;
                    r.bits(buffer_delay_length)?;
                    r.flag()?;
                }
                if initial_display_delay_present && r.flag()? {
                    r.bits(4)?;
                }
            }
        }
        let width_bits = r.bits(4)? + 1;
        let height_bits = r.bits(4)? + 1;
        sh.max_width = r.bits(width_bits)? + 1;
        sh.max_height = r.bits(height_bits)? + 1;
        if !reduced && r.flag()? {
            // frame_id_numbers_present_flag
            r.bits(4)?;
            r.bits(3)?;
        }
        r.bits(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
        if !reduced {
            r.bits(4)?; // interintra, masked compound, warped motion, dual filter
            let order_hint = r.flag()?;
            if order_hint {
                r.bits(2)?; // jnt_comp, ref_frame_mvs
            }
            let force_screen_content = if r.flag()? { 2 } else { r.bits(1)? };
            if force_screen_content > 0 && !r.flag()? {
                r.bits(1)?; // seq_force_integer_mv
            }
            if order_hint {
                r.bits(3)?;
            }
        }
        r.bits(3)?; // superres, cdef, restoration
        // color_config
        let high_bitdepth = r.flag()?;
        sh.bit_depth = if sh.profile == 2 && high_bitdepth {
            if r.flag()? { 12 } else { 10 }
        } else if high_bitdepth {
            10
        } else {
            8
        };
        sh.monochrome = if sh.profile == 1 { false } else { r.flag()? };
        if r.flag()? {
            sh.color_description = Some((r.bits(8)? as u8, r.bits(8)? as u8, r.bits(8)? as u8));
        }
        let (cp, tc, mc) = sh.color_description.unwrap_or((2, 2, 2));
        if sh.monochrome {
            sh.full_range = r.flag()?;
            sh.subsampling_x = true;
            sh.subsampling_y = true;
        } else if cp == 1 && tc == 13 && mc == 0 {
            sh.full_range = true;
        } else {
            sh.full_range = r.flag()?;
            match sh.profile {
                0 => {
                    sh.subsampling_x = true;
                    sh.subsampling_y = true;
                }
                1 => {}
                _ => {
                    if sh.bit_depth == 12 {
                        sh.subsampling_x = r.flag()?;
                        sh.subsampling_y = sh.subsampling_x && r.flag()?;
                    } else {
                        sh.subsampling_x = true;
                    }
                }
            }
            if sh.subsampling_x && sh.subsampling_y {
                sh.chroma_sample_position = r.bits(2)? as u8;
            }
        }
        if !sh.monochrome {
            r.flag()?; // separate_uv_delta_q
        }
        sh.film_grain = r.flag()?;
        Ok(sh)
    }

    /// Finds and parses the first sequence header in a buffer of OBUs.
    pub fn find(data: &[u8]) -> Result<Option<(Self, Obu)>, Av1Error> {
        for obu in parse_obus(data)? {
            if obu.obu_type == OBU_SEQUENCE_HEADER {
                let sh = Self::parse(&data[obu.payload_start..obu.end])?;
                return Ok(Some((sh, obu)));
            }
        }
        Ok(None)
    }

    /// The `level` caps field ("4.1" for `seq_level_idx` 9).
    pub fn level_string(&self) -> Option<String> {
        (self.level_idx < 24).then(|| format!("{}.{}", 2 + self.level_idx / 4, self.level_idx % 4))
    }

    /// The `profile` caps field.
    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            0 => "main",
            1 => "high",
            _ => "professional",
        }
    }

    /// The `av1C` record: the four header bytes followed by `config_obus` (the sequence header
    /// OBU, with its size field).
    pub fn av1c(&self, config_obus: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + config_obus.len());
        v.push(0x81); // marker, version 1
        v.push((self.profile << 5) | (self.level_idx & 0x1f));
        v.push(
            (self.tier << 7)
                | (u8::from(self.bit_depth > 8) << 6)
                | (u8::from(self.bit_depth == 12) << 5)
                | (u8::from(self.monochrome) << 4)
                | (u8::from(self.subsampling_x) << 3)
                | (u8::from(self.subsampling_y) << 2)
                | (self.chroma_sample_position & 3),
        );
        v.push(0); // no initial presentation delay
        v.extend_from_slice(config_obus);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_reads_multi_byte_values() {
        assert_eq!(read_leb128(&[0x05]), Some((5, 1)));
        assert_eq!(read_leb128(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(read_leb128(&[0x80]), None);
    }

    #[test]
    fn obu_sizes_past_the_end_are_errors() {
        // temporal delimiter, size 0; then an OBU that claims 9 bytes with 1 present
        let data = [0x12, 0x00, 0x0a, 0x09, 0x00];
        let err = parse_obus(&data).unwrap_err();
        assert!(err.0.contains("runs past"), "{err}");
        let obus = parse_obus(&data[..2]).unwrap();
        assert_eq!(obus[0].obu_type, OBU_TEMPORAL_DELIMITER);
    }

    #[test]
    fn hdr_metadata_obus_are_read() {
        // METADATA_TYPE_HDR_CLL: max_cll 1000, max_fall 400
        let cll = [0x2a, 0x05, 0x01, 0x03, 0xe8, 0x01, 0x90];
        let hdr = HdrMetadata::scan(&cll);
        assert_eq!(hdr.content_light, Some((1000, 400)));
        assert!(hdr.mastering_display.is_none());
        let mut mdcv = vec![0x2a, 25, 0x02];
        for v in [1u16, 2, 3, 4, 5, 6, 7, 8] {
            mdcv.extend_from_slice(&v.to_be_bytes());
        }
        mdcv.extend_from_slice(&256_000u32.to_be_bytes());
        mdcv.extend_from_slice(&16u32.to_be_bytes());
        let m = HdrMetadata::scan(&mdcv).mastering_display.unwrap();
        assert_eq!(m.primaries, [(1, 2), (3, 4), (5, 6)]);
        assert_eq!(m.white_point, (7, 8));
        assert_eq!((m.luminance_max, m.luminance_min), (256_000, 16));
    }

    #[test]
    fn av1c_header_bits() {
        let sh = SequenceHeader {
            profile: 0,
            level_idx: 8,
            bit_depth: 10,
            subsampling_x: true,
            subsampling_y: true,
            ..Default::default()
        };
        let c = sh.av1c(&[0xaa]);
        assert_eq!(c, vec![0x81, 0x08, 0x4c, 0x00, 0xaa]);
        assert_eq!(sh.level_string().as_deref(), Some("4.0"));
    }
}
