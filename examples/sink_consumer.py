#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""vigilsink with a Python consumer: how a `new-sample` handler reports failure.

    GST_PLUGIN_PATH=build/plugins /usr/bin/python3 examples/sink_consumer.py [--fail-at N]

PyGObject swallows an exception raised inside a signal handler: it prints the traceback and
the signal returns its default (`OK`), so the sink would go on as if the sample had been
consumed. A handler that fails must return `Gst.FlowReturn.ERROR` instead: vigilsink then
posts an ERROR naming the failure (a consumer error, as a Rust consumer's `Err`), and the run
never ends in a clean EOS. This script consumes 50 frames; with `--fail-at N` its handler fails
at frame N and the script prints the ERROR and exits with status 1.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fail-at", type=int, default=-1, help="fail at this frame (default: never)")
    args = ap.parse_args()

    Gst.init(None)
    if Gst.ElementFactory.find("vigilsink") is None:
        print("vigilsink is not found: set GST_PLUGIN_PATH to the built plugins (build/plugins)", file=sys.stderr)
        return 2
    pipeline = Gst.parse_launch(
        "videotestsrc num-buffers=50 ! video/x-raw,width=64,height=64 ! vigilsink name=sink"
    )
    consumed = []

    def on_sample(_sink, sample):
        try:
            if len(consumed) == args.fail_at:
                raise IOError(f"the archive refused frame {len(consumed)}")
            consumed.append(sample.get_buffer().get_size())
            return Gst.FlowReturn.OK
        except Exception as e:  # an exception would be swallowed: report it as a flow error
            print(f"consumer failed: {e}", file=sys.stderr)
            return Gst.FlowReturn.ERROR

    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is None:
        print("no EOS or ERROR within 30 s")
        return 1
    if msg.type == Gst.MessageType.ERROR:
        err, _ = msg.parse_error()
        print(f"ERROR after {len(consumed)} frames: {err.message}")
        return 1
    print(f"EOS after {len(consumed)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
