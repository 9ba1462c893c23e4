// SPDX-License-Identifier: MPL-2.0
//! Encoder: `vigilsvtav1enc` against `SvtAv1EncApp`, `ffmpeg -c:v libsvtav1` (same SVT-AV1
//! parameters, same Y4M) and libaom `av1enc` at its fastest realtime setting.

use std::process::Command;

use crate::context::Ctx;
use crate::inputs::{self, Y4m};
use crate::report::{Comparison, Item, Metric, Section, Target};
use crate::runner::{Case, interleave};
use crate::tools::{exists, file_size, run_measured};

/// Rate control shared by every SVT-AV1 case.
pub const CRF: u32 = 30;
/// Frames between key frames, for every encoder.
pub const KEYINT: u32 = 150;
/// IVF file header and per-frame header sizes, taken off the files the tools write so sizes
/// compare bitstream bytes.
const IVF_HEADER: u64 = 32;
const IVF_FRAME_HEADER: u64 = 12;

pub const VIGIL: &str = "vigilsvtav1enc";
pub const APP: &str = "SvtAv1EncApp";
const FFMPEG: &str = "ffmpeg -c:v libsvtav1";
const AOM: &str = "av1enc (libaom realtime, cpu-used=10)";
const VIGIL_DEFAULT_BLOCKSIZE: &str = "vigilsvtav1enc, filesrc at its default 4 KiB blocksize";
pub const INPUT_PATH: &str = "input path alone: filesrc ! y4mdec ! fakesink";

/// Description of the pipeline that encodes `y4m` with `encoder` into `out`.
pub fn encode_pipeline(y4m: &Y4m, encoder: &str, out: &std::path::Path) -> String {
    format!(
        "filesrc location={} blocksize={} ! y4mdec ! {encoder} ! filesink location={}",
        y4m.path.display(),
        y4m.frame_record_bytes(),
        out.display()
    )
}

fn ivf_payload(size: u64, frames: u64) -> u64 {
    size.saturating_sub(IVF_HEADER + IVF_FRAME_HEADER * frames)
}

fn comparison(ctx: &Ctx, y4m: &Y4m, preset: u32, with_aom: bool) -> Comparison {
    let work = &ctx.work;
    let timeout = ctx.timeout();
    let frames = y4m.frames;
    let mut cases = vec![
        Case::new(VIGIL, |_| {
            let out = work.join("enc-vigil.obu");
            let _ = std::fs::remove_file(&out);
            let mut run = ctx.gst_process(
                &encode_pipeline(
                    y4m,
                    &format!("vigilsvtav1enc preset={preset} crf={CRF} keyframe-max-dist={KEYINT}"),
                    &out,
                ),
                "enc-vigil",
                None,
            )?;
            run.bytes = Some(file_size(&out));
            Ok(run)
        }),
        Case::new(VIGIL_DEFAULT_BLOCKSIZE, |_| {
            let out = work.join("enc-vigil-4k.obu");
            let _ = std::fs::remove_file(&out);
            let desc = encode_pipeline(
                y4m,
                &format!("vigilsvtav1enc preset={preset} crf={CRF} keyframe-max-dist={KEYINT}"),
                &out,
            );
            let desc = desc.replace(&format!(" blocksize={}", y4m.frame_record_bytes()), "");
            let mut run = ctx.gst_process(&desc, "enc-vigil-4k", None)?;
            run.bytes = Some(file_size(&out));
            Ok(run)
        }),
        Case::new(APP, |_| {
            let out = work.join("enc-app.ivf");
            let mut run = run_measured(
                Command::new("SvtAv1EncApp")
                    .arg("-i")
                    .arg(&y4m.path)
                    .arg("-b")
                    .arg(&out)
                    .args(["--preset", &preset.to_string()])
                    .args(["--crf", &CRF.to_string()])
                    .args(["--keyint", &KEYINT.to_string()]),
                &work.join("enc-app.log"),
                timeout,
                None,
            )?;
            run.bytes = Some(ivf_payload(file_size(&out), frames));
            Ok(run)
        }),
    ];
    if exists("ffmpeg") {
        cases.push(Case::new(FFMPEG, |_| {
            let out = work.join("enc-ffmpeg.ivf");
            let mut run = run_measured(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-y", "-loglevel", "error", "-i"])
                    .arg(&y4m.path)
                    .args(["-c:v", "libsvtav1", "-preset", &preset.to_string()])
                    .args(["-crf", &CRF.to_string(), "-g", &KEYINT.to_string()])
                    // ffmpeg 5.1 sets 4 hierarchical levels (16-frame mini-GOPs) where
                    // SVT-AV1 1.4 and SvtAv1EncApp default to 5 (32) for these presets in CRF.
                    .args(["-svtav1-params", "hierarchical-levels=5"])
                    .args(["-f", "ivf"])
                    .arg(&out),
                &work.join("enc-ffmpeg.log"),
                timeout,
                None,
            )?;
            run.bytes = Some(ivf_payload(file_size(&out), frames));
            Ok(run)
        }));
    }
    // The GStreamer input path alone: what every GStreamer case above pays before the encoder.
    cases.push(Case::new(INPUT_PATH, |_| {
        ctx.gst_process(
            &format!(
                "filesrc location={} blocksize={} ! y4mdec ! fakesink",
                y4m.path.display(),
                y4m.frame_record_bytes()
            ),
            "enc-input-path",
            None,
        )
    }));
    if with_aom {
        cases.push(Case::new(AOM, |_| {
            let out = work.join("enc-aom.obu");
            let mut run = ctx.gst_process(
                &encode_pipeline(
                    y4m,
                    &format!(
                        "av1enc usage-profile=realtime cpu-used=10 end-usage=q \
                         min-quantizer={CRF} max-quantizer={CRF} keyframe-max-dist={KEYINT} \
                         threads=0 row-mt=true"
                    ),
                    &out,
                ),
                "enc-aom",
                None,
            )?;
            run.bytes = Some(file_size(&out));
            Ok(run)
        }));
    }
    let title = format!(
        "Encoder, {} ({} frames), preset {preset}, CRF {CRF}",
        y4m.label(),
        y4m.frames
    );
    let results = interleave(&title, cases, ctx.rounds);
    let reference = results.iter().position(|r| r.name == APP).unwrap_or(0);
    let mut notes = Vec::new();
    if with_aom {
        notes.push(format!(
            "libaom has no CRF: `av1enc` runs in realtime usage at `cpu-used=10` (its fastest) with \
             the quantizer fixed at {CRF} (`end-usage=q`, min = max quantizer), so its speed and \
             size compare with SVT-AV1's at preset {preset}, not its quality."
        ));
    }
    Comparison {
        id: format!("enc-{}-p{preset}", y4m.label()),
        title,
        metric: Metric::Fps { frames },
        reference,
        results,
        sizes: true,
        notes,
    }
}

/// The encoder section and its targets (one per configuration: >= 0.98x SvtAv1EncApp).
pub fn run(ctx: &mut Ctx) -> Result<(Section, Vec<Target>), String> {
    if !exists("SvtAv1EncApp") {
        ctx.skipped
            .push("Encoder: SvtAv1EncApp is not installed (Debian package svt-av1).".into());
        return Err("SvtAv1EncApp missing".into());
    }
    let with_aom = ctx.has_elements(&["av1enc"]);
    if !with_aom {
        ctx.skipped
            .push("Encoder: libaom `av1enc` (gst-plugins-bad) is not available.".into());
    }
    let configs: Vec<(u32, u32, u64, Vec<u32>)> = if ctx.quick() {
        vec![(1280, 720, 40, vec![12])]
    } else {
        vec![
            (1920, 1080, 60, vec![8, 10, 12]),
            (1280, 720, 90, vec![8, 10, 12]),
        ]
    };
    let mut items = vec![Item::Text(format!(
        "Same Y4M input (ffmpeg `testsrc2`, 8-bit 4:2:0, 30 fps) and the same SVT-AV1 parameters \
         for the three SVT-AV1 cases: `--preset P --crf {CRF} --keyint {KEYINT}`, everything else \
         at its default (all logical processors); ffmpeg also gets \
         `-svtav1-params hierarchical-levels=5`, SVT-AV1's own default that ffmpeg 5.1 \
         overrides, so the three give the same bitstream (the sizes show it; \
         `vigilsvtav1enc` writes a few bytes more: the colour description it takes from the \
         caps into the sequence header). Every case is a whole process timed from its start to its exit, the way a \
         user runs it: `gst-launch-1.0 -q filesrc ! y4mdec ! vigilsvtav1enc ! filesink` and the \
         tools' command lines. `filesrc` reads one Y4M frame record per buffer (`blocksize`); the second row is \
         the same pipeline with `filesrc` at its default 4 KiB reads, as a user who does not set \
         it runs it (about 23 000 reads per 1080p second instead of 30). The row \
         \"input path alone\" is `filesrc ! y4mdec ! fakesink`: \
         what the GStreamer cases spend reading and parsing the Y4M before any encoder (its \
         speed ratio means nothing; its CPU time is the point). Output bytes are bitstream \
         bytes (IVF headers taken off)."
    ))];
    let mut targets = Vec::new();
    for (w, h, frames, mut presets) in configs {
        if let Some(p) = &ctx.presets {
            presets.clone_from(p);
        }
        let y4m = inputs::y4m(&ctx.work, w, h, frames)?;
        for preset in presets {
            let aom_here = with_aom && preset == 12;
            let c = comparison(ctx, &y4m, preset, aom_here);
            targets.push(Target {
                label: format!(
                    "encoder {} preset {preset}: {VIGIL} >= 0.98x {APP}",
                    y4m.label()
                ),
                comparison: c.id.clone(),
                case: VIGIL.into(),
                vs: APP.into(),
                min_ratio: 0.98,
                cpu_at_most: false,
                at_most: None,
            });
            if exists("ffmpeg") {
                targets.push(Target {
                    label: format!(
                        "encoder {} preset {preset}: {VIGIL} >= 1.0x {FFMPEG}",
                        y4m.label()
                    ),
                    comparison: c.id.clone(),
                    case: VIGIL.into(),
                    vs: FFMPEG.into(),
                    min_ratio: 1.0,
                    cpu_at_most: false,
                    at_most: None,
                });
            }
            items.push(Item::Comparison(c));
        }
    }
    Ok((
        Section {
            title: "Encoder".into(),
            items,
        },
        targets,
    ))
}
