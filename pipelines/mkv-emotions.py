#!/usr/bin/python3
"""Reads back the emotions recorded inside a Matroska file.

    pipelines/mkv-emotions.py REC.mkv              # the JSON lines, one per frame
    pipelines/mkv-emotions.py --subtitles REC.mkv  # "START DURATION TEXT" (seconds)

REC.mkv is a file that pipelines/video-to-mkv.sh (or any pipeline with
feremotionexport's json_src / subtitle_src into matroskamux) wrote. The
tracks are found by their titles, "Emotions (JSON lines)" and "Emotions".
matroskademux hands a UTF-8 text track out as Pango markup, escaped
(`&quot;` for `"`): the text is unescaped here, so each JSON line comes
out exactly as feremotionexport wrote it. Needs python3-gi and
gir1.2-gstreamer-1.0 (Debian).
"""
import argparse
import html
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

JSON_TITLE = "Emotions (JSON lines)"
SUBTITLE_TITLE = "Emotions"


def track_title(pad):
    """The title of the track a demuxer pad carries (its tag events)."""
    i = 0
    while True:
        event = pad.get_sticky_event(Gst.EventType.TAG, i)
        if event is None:
            return None
        ok, title = event.parse_tag().get_string(Gst.TAG_TITLE)
        if ok:
            return title
        i += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subtitles", action="store_true",
                        help="print the subtitle track with its times instead")
    parser.add_argument("recording")
    args = parser.parse_args()
    wanted = SUBTITLE_TITLE if args.subtitles else JSON_TITLE
    if not os.path.isfile(args.recording):
        sys.exit("mkv-emotions.py: %s: no such file" % args.recording)
    # `| head` ends the output quietly
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    Gst.init(None)
    pipeline = Gst.Pipeline.new("reader")
    src = Gst.ElementFactory.make("filesrc")
    demux = Gst.ElementFactory.make("matroskademux")
    if src is None or demux is None:
        sys.exit("mkv-emotions.py: GStreamer's filesrc or matroskademux is "
                 "missing (gstreamer1.0-plugins-good)")
    src.set_property("location", args.recording)
    pipeline.add(src)
    pipeline.add(demux)
    src.link(demux)
    found = []

    def on_buffer(sink, buf, pad):
        if track_title(pad) != wanted:
            return
        ok, info = buf.map(Gst.MapFlags.READ)
        text = html.unescape(bytes(info.data).decode("utf-8"))
        buf.unmap(info)
        found.append(True)
        if args.subtitles:
            print("%.3f %.3f %s" % (buf.pts / Gst.SECOND,
                                    buf.duration / Gst.SECOND,
                                    text.replace("\n", " | ")))
        else:
            print(text)

    def on_pad_added(element, pad):
        # every track to a sink of its own, so that none holds up another
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        sink.set_property("async", False)
        if pad.get_name().startswith("subtitle"):
            sink.set_property("signal-handoffs", True)
            sink.connect("handoff", on_buffer)
        pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    demux.connect("pad-added", on_pad_added)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        sys.exit("mkv-emotions.py: %s: %s" % (args.recording, err.message))
    if not found:
        sys.exit("mkv-emotions.py: %s: no track titled \"%s\" (or it is empty)"
                 % (args.recording, wanted))


if __name__ == "__main__":
    main()
