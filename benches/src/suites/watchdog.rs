// SPDX-License-Identifier: MPL-2.0
//! Watchdog cost: each codec element with its watchdog at the default timeout against the same
//! element with `watchdog-timeout=0` (disabled), on the same input, interleaved.

use crate::context::Ctx;
use crate::inputs;
use crate::report::{Comparison, Item, Metric, Section, Target};
use crate::runner::{Case, Run, interleave};
use crate::suites::decoder::decode_once;
use crate::suites::encoder::{CRF, KEYINT, encode_pipeline};

const ON: &str = "watchdog on (default timeout)";
const OFF: &str = "watchdog-timeout=0 (disabled)";

fn pair<'a>(make: impl Fn(&str, usize) -> Result<Run, String> + Copy + 'a) -> Vec<Case<'a>> {
    vec![
        Case::new(OFF, move |round| make("watchdog-timeout=0", round)),
        Case::new(ON, move |round| make("", round)),
    ]
}

fn comparison(ctx: &Ctx, id: &str, title: String, frames: u64, cases: Vec<Case<'_>>) -> Comparison {
    // A 1 % effect needs more rounds than the other comparisons to stand out of the noise.
    let results = interleave(&title, cases, 2 * ctx.rounds + 1);
    Comparison {
        id: id.into(),
        title,
        metric: Metric::Fps { frames },
        reference: 0,
        results,
        sizes: false,
        notes: vec![],
    }
}

/// The watchdog section and its targets (cost <= 1 %: on >= 0.99x off).
pub fn run(ctx: &mut Ctx) -> Result<(Section, Vec<Target>), String> {
    let (ew, eh, ef, df) = if ctx.quick() {
        (1280, 720, 20, 60)
    } else {
        (1920, 1080, 60, 240)
    };
    let (dw, dh) = (ew, eh);
    let y4m = inputs::y4m(&ctx.work, ew, eh, ef)?;
    let ivf = inputs::av1_ivf(&ctx.work, dw, dh, df)?;
    let ctx: &Ctx = ctx;
    let out = ctx.work.join("watchdog-enc.obu");
    let (y4m_ref, out_ref, ivf_ref) = (&y4m, &out, &ivf);
    let enc = comparison(
        ctx,
        "wd-enc",
        format!(
            "vigilsvtav1enc watchdog, {} ({ef} frames), preset 12",
            y4m.label()
        ),
        ef,
        pair(move |extra, _| {
            ctx.gst_process(
                &encode_pipeline(
                    y4m_ref,
                    &format!(
                        "vigilsvtav1enc preset=12 crf={CRF} keyframe-max-dist={KEYINT} {extra}"
                    ),
                    out_ref,
                ),
                "wd-enc",
                None,
            )
        }),
    );
    let dec = comparison(
        ctx,
        "wd-dec",
        format!("vigildav1ddec watchdog, {dw}x{dh} ({df} frames)"),
        df,
        pair(move |extra, round| {
            decode_once(
                ctx,
                ivf_ref,
                &format!("vigildav1ddec {extra}"),
                false,
                df,
                round,
            )
        }),
    );
    let mut targets = Vec::new();
    for (c, element) in [(&enc, "vigilsvtav1enc"), (&dec, "vigildav1ddec")] {
        targets.push(Target {
            label: format!("{element} watchdog cost <= 1 % (on >= 0.99x off)"),
            comparison: c.id.clone(),
            case: ON.into(),
            vs: OFF.into(),
            min_ratio: 0.99,
            cpu_at_most: false,
            at_most: None,
        });
    }
    Ok((
        Section {
            title: "Watchdog cost".into(),
            items: vec![
                Item::Text(
                    "The same pipeline with the element's `watchdog-timeout` at its default and at \
                     0 (no watchdog: the waits on the worker are untimed and no progress is \
                     checked), each run a whole `gst-launch-1.0` process, in twice as many rounds plus one as the other comparisons. The \
                     ratio is the speed with the watchdog over the speed without; 1 % of cost \
                     is 0.99."
                        .into(),
                ),
                Item::Comparison(enc),
                Item::Comparison(dec),
            ],
        },
        targets,
    ))
}
