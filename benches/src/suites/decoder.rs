// SPDX-License-Identifier: MPL-2.0
//! Decoder: `vigildav1ddec` against the `dav1d` CLI, `ffmpeg -c:v libdav1d`, libaom `av1dec`
//! and gst-plugins-rs `dav1ddec`, into `fakesink` with and without `GstVideoMeta` offered
//! downstream (without it, a decoder must copy frames into the default layout).

use std::path::Path;
use std::process::Command;

use crate::context::Ctx;
use crate::gstrun::{count_buffers, launch, run_to_eos};
use crate::inputs;
use crate::report::{Comparison, Item, Metric, Section, Target};
use crate::runner::{Case, Run, interleave};
use crate::tools::{exists, run_measured};

const CLI: &str = "dav1d CLI";
const VIGIL_META: &str = "vigildav1ddec, VideoMeta offered";
const VIGIL_COPY: &str = "vigildav1ddec, no VideoMeta";
const RS_META: &str = "dav1ddec (gst-plugins-rs), VideoMeta offered";
const RS_COPY: &str = "dav1ddec (gst-plugins-rs), no VideoMeta";

/// Description of `filesrc ! ivfparse ! av1parse ! <decoder> ! fakesink name=sink`.
pub fn decode_pipeline(ivf: &Path, decoder: &str) -> String {
    format!(
        "filesrc location={} ! ivfparse ! av1parse ! {decoder} ! fakesink name=sink sync=false",
        ivf.display()
    )
}

/// The sink of a decode case: `fakevideosink` answers the allocation query with `GstVideoMeta`
/// support, as a video sink does; `fakesink` does not answer it.
fn sink(meta: bool) -> &'static str {
    if meta { "fakevideosink" } else { "fakesink" }
}

/// Decodes `ivf` once in this process and checks that every frame reached the sink (the timed
/// runs are whole processes, which cannot count; this check runs before them).
pub fn check_frames(
    ctx: &Ctx,
    ivf: &Path,
    decoder: &str,
    meta: bool,
    frames: u64,
) -> Result<(), String> {
    let desc = decode_pipeline(ivf, decoder)
        .replace("fakesink name=sink", &format!("{} name=sink", sink(meta)));
    let p = launch(&desc)?;
    let count = count_buffers(&p, "sink")?;
    run_to_eos(&p, ctx.timeout())?;
    let n = count.load(std::sync::atomic::Ordering::Relaxed);
    if n != frames {
        return Err(format!("{decoder} gave {n} frames, expected {frames}"));
    }
    Ok(())
}

/// Decodes `ivf` with `decoder` in a `gst-launch-1.0` process (after one in-process run that
/// checks every frame arrives, the first time it is asked for in a comparison).
pub fn decode_once(
    ctx: &Ctx,
    ivf: &Path,
    decoder: &str,
    meta: bool,
    frames: u64,
    round: usize,
) -> Result<Run, String> {
    if round == 0 {
        check_frames(ctx, ivf, decoder, meta, frames)?;
    }
    let desc = decode_pipeline(ivf, decoder)
        .replace("fakesink name=sink", &format!("{} name=sink", sink(meta)));
    let log = decoder.split_whitespace().next().unwrap_or("dec");
    ctx.gst_process(&desc, &format!("dec-{log}"), None)
}

/// One decoder comparison on a `w`x`h` stream; `all` adds ffmpeg, libaom and the
/// VideoMeta-offered cases.
fn comparison(
    ctx: &Ctx,
    id: &str,
    (w, h, frames): (u32, u32, u64),
    all: bool,
    note: &str,
) -> Result<Comparison, String> {
    let ivf = inputs::av1_ivf(&ctx.work, w, h, frames)?;
    let has_cli = exists("dav1d");
    let has_rs = ctx.dav1ddec.is_some() && ctx.has_elements(&["dav1ddec"]);
    let work = &ctx.work;
    let ivf_ref = &ivf;
    let mut cases = Vec::new();
    if has_cli {
        cases.push(Case::new(CLI, |_| {
            run_measured(
                Command::new("dav1d").arg("-i").arg(ivf_ref).args([
                    "-o",
                    "/dev/null",
                    "--muxer",
                    "null",
                    "--quiet",
                ]),
                &work.join("dec-dav1d.log"),
                ctx.timeout(),
                None,
            )
        }));
    }
    if all {
        cases.push(Case::new(VIGIL_META, |round| {
            decode_once(ctx, ivf_ref, "vigildav1ddec", true, frames, round)
        }));
    }
    cases.push(Case::new(VIGIL_COPY, |round| {
        decode_once(ctx, ivf_ref, "vigildav1ddec", false, frames, round)
    }));
    if has_rs {
        cases.push(Case::new(RS_META, |round| {
            decode_once(ctx, ivf_ref, "dav1ddec", true, frames, round)
        }));
        cases.push(Case::new(RS_COPY, |round| {
            decode_once(ctx, ivf_ref, "dav1ddec", false, frames, round)
        }));
    }
    if all && exists("ffmpeg") {
        cases.push(Case::new("ffmpeg -c:v libdav1d", |_| {
            run_measured(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-loglevel", "error", "-c:v", "libdav1d", "-i"])
                    .arg(ivf_ref)
                    .args(["-f", "null", "-"]),
                &work.join("dec-ffmpeg.log"),
                ctx.timeout(),
                None,
            )
        }));
    }
    if all && ctx.has_elements(&["av1dec"]) {
        cases.push(Case::new("av1dec (libaom)", |round| {
            decode_once(ctx, ivf_ref, "av1dec", false, frames, round)
        }));
    }
    let title = format!("Decoder, {w}x{h} ({frames} frames, SVT-AV1 preset 10, CRF 30)");
    // The decoder targets are the tightest (1.0x): two more rounds than the other comparisons.
    let rounds = if ctx.quick() {
        ctx.rounds
    } else {
        ctx.rounds + 2
    };
    let results = interleave(&title, cases, rounds);
    let reference = results.iter().position(|r| r.name == CLI).unwrap_or(0);
    let mut notes = vec![note.to_string()];
    if all {
        notes.push(
            "Every decoder runs with its defaults (threads: one per logical processor, frame \
             delay chosen by the library). GStreamer cases run `filesrc ! ivfparse ! av1parse ! \
             DECODER ! SINK sync=false` as `gst-launch-1.0 -q` processes, timed from start to \
             exit like the tools (one more run in the harness process checks, before the timed \
             ones, that every frame arrives); \"VideoMeta offered\" means the sink is \
             `fakevideosink`, which answers the allocation query with `GstVideoMeta` support as \
             a video sink does, so a decoder may hand out libdav1d's strided planes without a \
             copy; \"no VideoMeta\" is plain `fakesink`, which does not answer it. The dav1d CLI writes to its `null` muxer and \
             ffmpeg to `-f null`: neither touches the decoded pixels."
                .into(),
        );
    }
    Ok(Comparison {
        id: id.into(),
        title,
        metric: Metric::Fps { frames },
        reference,
        results,
        sizes: false,
        notes,
    })
}

/// The decoder section and its targets.
pub fn run(ctx: &mut Ctx) -> Result<(Section, Vec<Target>), String> {
    let has_cli = exists("dav1d");
    let has_rs = ctx.dav1ddec.is_some() && ctx.has_elements(&["dav1ddec"]);
    if !has_cli {
        ctx.skipped
            .push("Decoder: the dav1d CLI is not installed (Debian package dav1d).".into());
    }
    if !ctx.has_elements(&["av1dec"]) {
        ctx.skipped
            .push("Decoder: libaom `av1dec` (gst-plugins-bad) is not available.".into());
    }
    let ctx: &Ctx = ctx;
    let main = if ctx.quick() {
        (1280, 720, 60)
    } else {
        (1920, 1080, 480)
    };
    let mut items = vec![Item::Comparison(comparison(
        ctx,
        "dec",
        main,
        true,
        "At this width libdav1d's plane strides equal GStreamer's default ones, so \
         gst-plugins-rs `dav1ddec` hands out libdav1d's planes without a copy even when \
         downstream has no VideoMeta; `vigildav1ddec` wraps them only when downstream takes \
         VideoMeta and copies otherwise.",
    )?)];
    let mut targets = Vec::new();
    if has_cli {
        targets.push(Target {
            label: format!("decoder: {VIGIL_META} >= 0.97x {CLI}"),
            comparison: "dec".into(),
            case: VIGIL_META.into(),
            vs: CLI.into(),
            min_ratio: 0.97,
            cpu_at_most: false,
            at_most: None,
        });
    }
    if has_rs {
        for (ours, theirs) in [(VIGIL_META, RS_META), (VIGIL_COPY, RS_COPY)] {
            targets.push(Target {
                label: format!("decoder: {ours} >= 1.0x {theirs}"),
                comparison: "dec".into(),
                case: ours.into(),
                vs: theirs.into(),
                min_ratio: 1.0,
                cpu_at_most: false,
                at_most: None,
            });
        }
    }
    if !ctx.quick() && has_rs {
        // 1912 is not a multiple of 64: libdav1d pads its strides (to 1920), GStreamer's
        // default layout does not, so without VideoMeta both elements must copy.
        let odd = (1912, 1080, 240);
        items.push(Item::Comparison(comparison(
            ctx,
            "dec-copy",
            odd,
            false,
            "1912 pixels wide: libdav1d's strides (1920, 960) differ from GStreamer's default \
             layout (1912, 956), so without VideoMeta gst-plugins-rs `dav1ddec` copies too: this \
             is the copy path of both elements.",
        )?));
        targets.push(Target {
            label: format!("decoder, copy path (1912x1080): {VIGIL_COPY} >= 1.0x {RS_COPY}"),
            comparison: "dec-copy".into(),
            case: VIGIL_COPY.into(),
            vs: RS_COPY.into(),
            min_ratio: 1.0,
            cpu_at_most: false,
            at_most: None,
        });
    }
    Ok((
        Section {
            title: "Decoder".into(),
            items,
        },
        targets,
    ))
}
