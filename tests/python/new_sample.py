#!/usr/bin/python3
# SPDX-License-Identifier: MPL-2.0
"""vigilsink's new-sample signal from Python (PyGObject): counts the samples and their bytes,
checks they come in order on a thread that is not the streaming thread, and prints a summary
line the Rust test reads. Run with /usr/bin/python3 and GST_PLUGIN_PATH set."""
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

Gst.init(None)
frames = int(sys.argv[1]) if len(sys.argv) > 1 else 30
pipeline = Gst.parse_launch(
    f"videotestsrc num-buffers={frames} ! video/x-raw,width=64,height=48,framerate=30/1 "
    "! identity name=id ! vigilsink name=sink leaky=block"
)
sink = pipeline.get_by_name("sink")
streaming_threads = set()
samples = []


def on_handoff(_identity, _buffer):
    streaming_threads.add(threading.get_ident())


def on_new_sample(_sink, sample):
    buf = sample.get_buffer()
    samples.append((buf.pts, buf.get_size(), threading.get_ident()))
    return Gst.FlowReturn.OK


pipeline.get_by_name("id").connect("handoff", on_handoff)
sink.connect("new-sample", on_new_sample)
pipeline.set_state(Gst.State.PLAYING)
msg = pipeline.get_bus().timed_pop_filtered(20 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
pipeline.set_state(Gst.State.NULL)
if msg is None or msg.type != Gst.MessageType.EOS:
    print("FAILED: no EOS", msg.parse_error() if msg else "timeout")
    sys.exit(1)
pts = [s[0] for s in samples]
workers = {s[2] for s in samples}
ok = pts == sorted(pts) and len(samples) == frames and not (workers & streaming_threads)
stats = sink.get_property("stats")
print(f"samples={len(samples)} bytes={sum(s[1] for s in samples)} in_order={pts == sorted(pts)} "
      f"off_streaming_thread={not (workers & streaming_threads)} rendered={stats.get_value('rendered')}")
sys.exit(0 if ok else 1)
