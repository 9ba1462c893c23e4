// SPDX-License-Identifier: MPL-2.0
//! What every suite needs: the work folder, the mode and its sizes, and what is available on
//! this machine (reference tools, peer elements).

use std::path::PathBuf;
use std::time::Duration;

use crate::runner::Run;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A smoke run of a few minutes on small inputs (CI).
    Quick,
    /// The run the report in `docs/` comes from.
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Shared by the suites.
#[derive(Debug)]
pub struct Ctx {
    pub mode: Mode,
    /// Inputs and outputs of the runs.
    pub work: PathBuf,
    /// Rounds of every comparison.
    pub rounds: usize,
    /// Version of gst-plugins-rs `dav1ddec`, when it is loaded.
    pub dav1ddec: Option<String>,
    /// Version of gst-plugins-rs `fallbacksrc`, when it is loaded.
    pub fallbacksrc: Option<String>,
    /// Why something was not measured.
    pub skipped: Vec<String>,
    /// SVT-AV1 presets to run instead of the mode's own (`--presets`).
    pub presets: Option<Vec<u32>>,
    /// `GST_PLUGIN_PATH` of the `gst-launch-1.0` processes: vigil's release plugins and the
    /// peers built for the run.
    pub plugin_path: String,
}

impl Ctx {
    /// Upper bound of one run of a case.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(600)
    }

    /// Runs `desc` as a user would, `gst-launch-1.0 -q DESC` in a fresh process, and gives its
    /// wall time, CPU time and peak RSS; its standard error goes to `WORK/LOG.log`.
    pub fn gst_process(&self, desc: &str, log: &str, bytes: Option<u64>) -> Result<Run, String> {
        crate::tools::run_measured(
            &mut crate::tools::gst_launch(desc, &self.plugin_path),
            &self.work.join(format!("{log}.log")),
            self.timeout(),
            bytes,
        )
    }

    /// As [`Ctx::gst_process`] for a live pipeline: stopped with SIGINT after `secs`.
    pub fn gst_process_for(&self, desc: &str, log: &str, secs: Duration) -> Result<Run, String> {
        let c = crate::tools::run_process_for(
            &mut crate::tools::gst_launch(desc, &self.plugin_path),
            &self.work.join(format!("{log}.log")),
            self.timeout(),
            Some(secs),
        )?;
        Ok(Run::from_process(c, None))
    }

    pub fn quick(&self) -> bool {
        self.mode == Mode::Quick
    }

    /// Whether every `element` can be made.
    pub fn has_elements(&self, elements: &[&str]) -> bool {
        elements
            .iter()
            .all(|e| gst::ElementFactory::find(e).is_some())
    }
}
