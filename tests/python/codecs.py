#!/usr/bin/python3
# SPDX-License-Identifier: MPL-2.0
"""vigilsvtav1enc and vigildav1ddec from Python (PyGObject): properties and enums set from
Python, a pipeline encoding and decoding back, the frames counted on an appsink, and a
watchdog ERROR read from the bus with its details structure. Prints one line per check."""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

Gst.init(None)


def run(pipeline, seconds=30):
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        seconds * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    return msg


p = Gst.parse_launch(
    "videotestsrc num-buffers=20 ! video/x-raw,width=160,height=128,framerate=25/1 "
    "! vigilsvtav1enc name=enc ! vigildav1ddec ! appsink name=sink emit-signals=true sync=false"
)
enc = p.get_by_name("enc")
enc.set_property("preset", 12)
enc.set_property("pred-structure", "low-delay")
assert enc.get_property("preset") == 12
frames = []
p.get_by_name("sink").connect(
    "new-sample", lambda s: frames.append(s.emit("pull-sample")) or Gst.FlowReturn.OK
)
msg = run(p)
if msg is None or msg.type != Gst.MessageType.EOS:
    print("FAILED: encode and decode did not end in EOS", msg.parse_error() if msg else "timeout")
    sys.exit(1)
print(f"roundtrip frames={len(frames)}")

p = Gst.parse_launch(
    "videotestsrc num-buffers=100 ! video/x-raw,width=160,height=128,framerate=25/1 "
    "! vigilsvtav1enc preset=13 watchdog-timeout=1000 fault-injection=wedge:streaming:5 ! fakesink"
)
msg = run(p)
if msg is None or msg.type != Gst.MessageType.ERROR:
    print("FAILED: a wedged encoder gave no ERROR")
    sys.exit(1)
err, _debug = msg.parse_error()
details = msg.parse_error_details()
print(f"watchdog reason={details.get_string('reason')} phase={details.get_string('phase')} text={err.message}")
sys.exit(0 if len(frames) == 20 else 1)
