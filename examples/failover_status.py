#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""vigilfailoversrc from Python: prints every status change and every switch.

    GST_PLUGIN_PATH=build/plugins /usr/bin/python3 examples/failover_status.py \
        [--seconds N] [--stall-timeout MS] URI [URI ...]

(build/plugins is where meson puts the plugins; installed plugins need no GST_PLUGIN_PATH.)

The first URI is the primary, the others are backups in priority order. The output goes to
a fakesink here; put an encoder and a muxer in its place for a real ingest. Each line is
printed as it happens:

    status starting active=-
    switch from='' to='file:///a.mkv' reason=initial
    status healthy active=file:///a.mkv
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("uris", nargs="+", help="inputs, primary first")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run until Ctrl-C)")
    ap.add_argument("--stall-timeout", type=int, default=3000, help="ms without data before an input has failed")
    ap.add_argument("--failback-delay", type=int, default=10000, help="ms, 0 at once, -1 never")
    args = ap.parse_args()

    Gst.init(None)
    if Gst.ElementFactory.find("vigilfailoversrc") is None:
        print(
            "vigilfailoversrc is not found: install the vigil plugins, or set GST_PLUGIN_PATH "
            "to the built ones (build/plugins after meson compile -C build)",
            file=sys.stderr,
        )
        return 2
    pipeline = Gst.parse_launch(
        "vigilfailoversrc name=f enable-audio=false "
        "video-caps=video/x-raw,width=320,height=240,framerate=30/1 "
        f"stall-timeout={args.stall_timeout} failback-delay={args.failback_delay} "
        "! fakesink sync=false"
    )
    src = pipeline.get_by_name("f")
    for uri in args.uris:
        src.emit("add-uri", uri)

    loop = GLib.MainLoop()
    result = {"code": 0}

    # Status changes come as `vigil-failover-status` element messages, in order with the
    # switches on the bus (the `status` property also notifies, from the element's thread).
    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s is not None and s.get_name() == "vigil-failover-status":
                active = s.get_string("active-input") or "-"
                print(f"status {s.get_string('status')} active={active}", flush=True)
            elif s is not None and s.get_name() == "vigil-failover-switched":
                print(
                    "switch from='{}' to='{}' reason={}".format(
                        s.get_string("from"), s.get_string("to"), s.get_string("reason")
                    ),
                    flush=True,
                )
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"error {err.message} ({dbg})", flush=True)
            result["code"] = 1
            loop.quit()
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    if args.seconds > 0:
        GLib.timeout_add(int(args.seconds * 1000), lambda: (loop.quit(), False)[1])

    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    stats = src.get_property("statistics")
    print(f"statistics {stats.to_string()}", flush=True)
    pipeline.set_state(Gst.State.NULL)
    print(f"status {src.get_property('status').value_nick}", flush=True)
    bus.remove_signal_watch()
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
