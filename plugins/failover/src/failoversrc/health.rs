// SPDX-License-Identifier: MPL-2.0
//! The health judgement of one input of `vigilfailoversrc`: pure (no threads, no clock: the
//! time is passed in), so every rule has a unit test.
//!
//! An input is judged per output stream and from its content:
//! - it has failed (it is stopped and retried) when it delivered nothing within
//!   `start-timeout` of its start, or a stream the output carries stopped for longer than
//!   `stall-timeout` (video, and audio when the output has audio and the input has some);
//! - it is impaired (it keeps running and is watched, but is not put on air) while its
//!   picture is black or unchanged, or its audio silent, for longer than the threshold of that
//!   check; it counts again once it has been clean for `clear-time`;
//! - after a failure, it must also flow for `clear-time` before it counts again;
//! - an input without video is never eligible for the video output.
//!
//! Windows follow the input's own cadence: a 1 fps input is flowing while a frame comes every
//! second, and its stall limit is at least three of its frame intervals.

use std::time::{Duration, Instant};

use super::types::{Rules, SwitchReason};

/// What an input delivered so far in its current run, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Seen {
    /// It has a video stream (linked).
    pub has_video: bool,
    /// It has an audio stream (linked).
    pub has_audio: bool,
    /// Age of its newest picture (`None`: none yet).
    pub video_age: Option<Duration>,
    /// Age of its newest audio (`None`: none yet).
    pub audio_age: Option<Duration>,
    /// Its own frame interval (the longest of its recent ones), if measured.
    pub frame_interval: Option<Duration>,
    /// Since its run started.
    pub running_for: Duration,
    pub black_for: Duration,
    pub frozen_for: Duration,
    pub silent_for: Duration,
}

/// The judgement of one input at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Judgement {
    /// Nothing yet, still within `start-timeout`.
    Starting,
    /// Every stream the output carries flows and the content is clean: it may go on air.
    Flowing,
    /// Its newest picture is older than the flow window (not yet a stall).
    Gap,
    /// Only audio: it never goes on air for the video output.
    NoVideo,
    /// Clean again after a failure or an impairment, for less than `clear-time`.
    Clearing,
    /// Black, frozen or silent for longer than the check allows: kept running, not on air.
    Impaired { reason: SwitchReason, text: String },
    /// Failed: stop it and retry it.
    Failed { reason: SwitchReason, text: String },
}

impl Judgement {
    /// A short name, for `statistics`.
    pub fn name(&self) -> &'static str {
        match self {
            Judgement::Starting => "starting",
            Judgement::Flowing => "flowing",
            Judgement::Gap => "gap",
            Judgement::NoVideo => "no-video",
            Judgement::Clearing => "clearing",
            Judgement::Impaired { reason, .. } => reason.as_str(),
            Judgement::Failed { reason, .. } => reason.as_str(),
        }
    }
}

/// The memory of the judgement across ticks: an impairment, and the clean time after it.
#[derive(Debug, Clone, Default)]
pub(crate) struct InputHealth {
    impaired: Option<(SwitchReason, String)>,
    /// It failed (was restarted) and has not yet flowed cleanly for `clear-time`.
    after_failure: bool,
    clean_since: Option<Instant>,
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl InputHealth {
    /// The input failed and is restarted: when it flows again it must clear first.
    pub fn failed(&mut self) {
        self.after_failure = true;
        self.impaired = None;
        self.clean_since = None;
    }

    /// Judges `seen` at `now`.
    pub fn judge(&mut self, seen: &Seen, rules: &Rules, now: Instant) -> Judgement {
        let interval = seen.frame_interval.unwrap_or(Duration::ZERO);
        let stall = rules.stall_timeout.max(interval * 3);
        let window = rules.flow_window.max(interval + interval / 2);
        let audio_expected = rules.audio_output && seen.has_audio;

        // Start: nothing at all, or a stream it has that never came.
        if seen.video_age.is_none() && seen.audio_age.is_none() {
            if seen.running_for >= rules.start_timeout {
                return Judgement::Failed {
                    reason: SwitchReason::StartFailure,
                    text: format!("no data within {} ms of the start", ms(rules.start_timeout)),
                };
            }
            return Judgement::Starting;
        }
        if seen.video_age.is_none() {
            if !seen.has_video && seen.running_for >= rules.start_timeout.min(stall) {
                return Judgement::NoVideo;
            }
            if seen.running_for >= rules.start_timeout {
                return if seen.has_video {
                    Judgement::Failed {
                        reason: SwitchReason::StartFailure,
                        text: format!(
                            "no video within {} ms of the start (its audio flows)",
                            ms(rules.start_timeout)
                        ),
                    }
                } else {
                    Judgement::NoVideo
                };
            }
            return Judgement::Starting;
        }
        // Stalls, per stream.
        let audio_fresh = seen.audio_age.is_some_and(|a| a < stall);
        if let Some(v) = seen.video_age
            && v >= stall
        {
            let text = if audio_fresh {
                format!("no video for {} ms while its audio still flows", ms(v))
            } else {
                format!("no data for {} ms", ms(v))
            };
            return Judgement::Failed {
                reason: SwitchReason::Stall,
                text,
            };
        }
        if audio_expected {
            match seen.audio_age {
                Some(a) if a >= stall => {
                    return Judgement::Failed {
                        reason: SwitchReason::Stall,
                        text: format!("no audio for {} ms while its video still flows", ms(a)),
                    };
                }
                None if seen.running_for >= rules.start_timeout.max(stall) => {
                    return Judgement::Failed {
                        reason: SwitchReason::Stall,
                        text: format!(
                            "no audio within {} ms of the start while its video flows",
                            ms(rules.start_timeout.max(stall))
                        ),
                    };
                }
                _ => {}
            }
        }
        // Content.
        let conditions = [
            (
                rules.black_timeout,
                seen.black_for,
                SwitchReason::Black,
                "black picture",
            ),
            (
                rules.freeze_timeout,
                seen.frozen_for,
                SwitchReason::Frozen,
                "unchanged picture",
            ),
            (
                rules.silence_timeout.filter(|_| audio_expected),
                seen.silent_for,
                SwitchReason::Silence,
                "silent audio",
            ),
        ];
        for (limit, lasted, reason, what) in conditions {
            if let Some(limit) = limit
                && lasted >= limit
            {
                let text = format!("{what} for {} ms", ms(lasted));
                self.impaired = Some((reason, text.clone()));
                self.clean_since = None;
                return Judgement::Impaired { reason, text };
            }
        }
        let gap = seen.video_age.is_some_and(|v| v >= window);
        if self.impaired.is_some() || self.after_failure {
            if gap {
                // Not clean while it does not flow.
                self.clean_since = None;
                return match &self.impaired {
                    Some((reason, text)) => Judgement::Impaired {
                        reason: *reason,
                        text: text.clone(),
                    },
                    None => Judgement::Clearing,
                };
            }
            let since = *self.clean_since.get_or_insert(now);
            if now.saturating_duration_since(since) < rules.clear_time {
                return Judgement::Clearing;
            }
            self.impaired = None;
            self.after_failure = false;
            self.clean_since = None;
        }
        if gap {
            return Judgement::Gap;
        }
        Judgement::Flowing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rules() -> Rules {
        Rules {
            stall_timeout: MS * 3000,
            start_timeout: MS * 5000,
            flow_window: MS * 200,
            black_timeout: None,
            freeze_timeout: None,
            silence_timeout: None,
            clear_time: MS * 1000,
            audio_output: true,
        }
    }

    fn flowing() -> Seen {
        Seen {
            has_video: true,
            has_audio: true,
            video_age: Some(MS * 10),
            audio_age: Some(MS * 10),
            frame_interval: Some(MS * 33),
            running_for: MS * 10_000,
            ..Seen::default()
        }
    }

    fn judge(seen: Seen, rules: Rules) -> Judgement {
        InputHealth::default().judge(&seen, &rules, Instant::now())
    }

    fn reason(j: &Judgement) -> Option<SwitchReason> {
        match j {
            Judgement::Failed { reason, .. } | Judgement::Impaired { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    #[test]
    fn both_streams_flowing_is_flowing() {
        assert_eq!(judge(flowing(), rules()), Judgement::Flowing);
    }

    #[test]
    fn nothing_within_start_timeout_is_a_start_failure_not_a_stall() {
        let mut s = Seen {
            has_video: true,
            running_for: MS * 4999,
            ..Seen::default()
        };
        // Longer than stall-timeout but within start-timeout: still starting (an RTSP
        // jitterbuffer).
        assert_eq!(judge(s, rules()), Judgement::Starting);
        s.running_for = MS * 5000;
        let j = judge(s, rules());
        assert_eq!(reason(&j), Some(SwitchReason::StartFailure), "{j:?}");
    }

    #[test]
    fn video_stalled_while_audio_flows_is_a_stall_that_says_so() {
        let s = Seen {
            video_age: Some(MS * 3000),
            ..flowing()
        };
        match judge(s, rules()) {
            Judgement::Failed { reason, text } => {
                assert_eq!(reason, SwitchReason::Stall);
                assert!(
                    text.contains("no video") && text.contains("audio still flows"),
                    "{text}"
                );
            }
            j => panic!("{j:?}"),
        }
    }

    #[test]
    fn audio_stalled_counts_only_when_the_output_has_audio() {
        let s = Seen {
            audio_age: Some(MS * 4000),
            ..flowing()
        };
        assert_eq!(reason(&judge(s, rules())), Some(SwitchReason::Stall));
        let no_audio = Rules {
            audio_output: false,
            ..rules()
        };
        assert_eq!(judge(s, no_audio), Judgement::Flowing);
        // An input without audio is not judged on audio.
        let silent_input = Seen {
            has_audio: false,
            audio_age: None,
            ..flowing()
        };
        assert_eq!(judge(silent_input, rules()), Judgement::Flowing);
    }

    #[test]
    fn an_audio_only_input_is_never_flowing_on_video() {
        let s = Seen {
            has_video: false,
            video_age: None,
            ..flowing()
        };
        assert_eq!(judge(s, rules()), Judgement::NoVideo);
        // Early on it may still be starting (its video pad may come later).
        let early = Seen {
            running_for: MS * 100,
            ..s
        };
        assert_eq!(judge(early, rules()), Judgement::Starting);
    }

    #[test]
    fn a_short_gap_is_a_gap_and_a_slow_input_follows_its_cadence() {
        let s = Seen {
            video_age: Some(MS * 300),
            ..flowing()
        };
        assert_eq!(judge(s, rules()), Judgement::Gap);
        // 1 fps: a frame 900 ms old is on time, and its stall limit is three intervals.
        let slow = Seen {
            video_age: Some(MS * 900),
            frame_interval: Some(MS * 1000),
            ..flowing()
        };
        assert_eq!(judge(slow, rules()), Judgement::Flowing);
        let short_stall = Rules {
            stall_timeout: MS * 1000,
            ..rules()
        };
        let late = Seen {
            video_age: Some(MS * 2500),
            ..slow
        };
        assert_eq!(judge(late, short_stall), Judgement::Gap);
        let dead = Seen {
            video_age: Some(MS * 3000),
            ..slow
        };
        assert_eq!(reason(&judge(dead, short_stall)), Some(SwitchReason::Stall));
    }

    #[test]
    fn content_checks_are_opt_in_and_each_has_its_reason() {
        let s = Seen {
            black_for: MS * 5000,
            frozen_for: MS * 5000,
            silent_for: MS * 5000,
            ..flowing()
        };
        assert_eq!(judge(s, rules()), Judgement::Flowing, "all checks off");
        for (r, expected) in [
            (
                Rules {
                    black_timeout: Some(MS * 1000),
                    ..rules()
                },
                SwitchReason::Black,
            ),
            (
                Rules {
                    freeze_timeout: Some(MS * 1000),
                    ..rules()
                },
                SwitchReason::Frozen,
            ),
            (
                Rules {
                    silence_timeout: Some(MS * 1000),
                    ..rules()
                },
                SwitchReason::Silence,
            ),
        ] {
            assert_eq!(reason(&judge(s, r)), Some(expected));
        }
        // Below the threshold: nothing.
        let r = Rules {
            black_timeout: Some(MS * 6000),
            ..rules()
        };
        assert_eq!(judge(s, r), Judgement::Flowing);
        // Silence does not count when the output has no audio.
        let r = Rules {
            silence_timeout: Some(MS * 1000),
            audio_output: false,
            ..rules()
        };
        assert_eq!(judge(s, r), Judgement::Flowing);
    }

    #[test]
    fn an_impaired_input_counts_again_after_clear_time() {
        let r = Rules {
            black_timeout: Some(MS * 1000),
            ..rules()
        };
        let t0 = Instant::now();
        let mut h = InputHealth::default();
        let black = Seen {
            black_for: MS * 1500,
            ..flowing()
        };
        assert_eq!(reason(&h.judge(&black, &r, t0)), Some(SwitchReason::Black));
        let clean = flowing();
        assert_eq!(h.judge(&clean, &r, t0 + MS * 100), Judgement::Clearing);
        assert_eq!(h.judge(&clean, &r, t0 + MS * 1000), Judgement::Clearing);
        // Black again while clearing: the clean time starts over.
        assert_eq!(
            reason(&h.judge(&black, &r, t0 + MS * 1050)),
            Some(SwitchReason::Black)
        );
        assert_eq!(h.judge(&clean, &r, t0 + MS * 1100), Judgement::Clearing);
        assert_eq!(h.judge(&clean, &r, t0 + MS * 2100), Judgement::Flowing);
    }

    #[test]
    fn a_restarted_input_flows_for_clear_time_before_it_counts() {
        let t0 = Instant::now();
        let mut h = InputHealth::default();
        h.failed();
        let s = flowing();
        assert_eq!(h.judge(&s, &rules(), t0), Judgement::Clearing);
        assert_eq!(h.judge(&s, &rules(), t0 + MS * 999), Judgement::Clearing);
        assert_eq!(h.judge(&s, &rules(), t0 + MS * 1000), Judgement::Flowing);
        // With clear-time 0 at once.
        let mut h = InputHealth::default();
        h.failed();
        let r = Rules {
            clear_time: Duration::ZERO,
            ..rules()
        };
        assert_eq!(h.judge(&s, &r, t0), Judgement::Flowing);
    }
}
