#!/usr/bin/python3
"""example-app.py: how a Python application reads the emotion metadata.

    example-app.py [--model M] FILE
    example-app.py [--model M] --pipeline "DESCRIPTION"

Runs `filesrc ! decodebin ! videoconvert ! facedetect display=false !
feremotion mode=roi ! fakesink` on a photo or a video (every frame), or any
description with an element named `feremotion`, and prints every face of
every buffer twice:

- `probe`: from the GstFerEmotionMeta on the buffer, read in a pad probe
  through the GstFerEmotion-1.0 typelib (count and nth: all faces, not
  only the first);
- `bus`: from the element's `feremotion` message, through its
  `face-array` field (a list in Python; `faces` itself is a GstValueList,
  which PyGObject cannot convert).

    bus   pts=0:00:00.000000000 face 175,64 97x97 roi 0 track 1: happy (0.87) [angry=0.01 ...]
    probe pts=0:00:00.000000000 face 175,64 97x97 roi 0 track 1: happy (0.87) [angry=0.01 ...]

Needs python3-gi, gir1.2-gstreamer-1.0, and the plugin and the typelib of
this project: installed, or from a checkout run it under
`meson devenv -C build` (which sets GST_PLUGIN_PATH, GI_TYPELIB_PATH and
LD_LIBRARY_PATH). The model defaults to the checkout's shipped
models/feremotion-resnet18-fer2013.safetensors when the script runs from
a checkout, else to the element's default ("fast", the installed copy).
Exits 1 on a pipeline error, 2 on bad arguments, 0 otherwise.
"""
import argparse
import os
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

try:
    gi.require_version("GstFerEmotion", "1.0")
    from gi.repository import GstFerEmotion  # noqa: E402
except ValueError as e:
    sys.exit("example-app.py: %s: install gst-feremotion, or run under "
             "`meson devenv -C build` from a checkout" % e)

SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "models",
                             "feremotion-resnet18-fer2013.safetensors")
FILE_PIPELINE = (
    "filesrc name=file ! decodebin ! videoconvert "
    "! facedetect display=false min-size-width=48 min-size-height=48 "
    "min-neighbors=5 ! feremotion name=feremotion mode=roi ! fakesink")


# the probe prints from the streaming thread, the bus reader from the main
# thread: one line at a time
print_lock = threading.Lock()


def say(line):
    with print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def describe(pts, x, y, w, h, roi_id, track_id, label, confidence, labels,
             probs):
    classes = " ".join("%s=%.2f" % (c, p) for c, p in zip(labels, probs))
    return "pts=%s face %d,%d %dx%d roi %d track %d: %s (%.2f) [%s]" % (
        format_time(pts), x, y, w, h, roi_id, track_id, label, confidence,
        classes)


def format_time(t):
    if t == Gst.CLOCK_TIME_NONE:
        return "none"
    return "%u:%02u:%02u.%09u" % (t // (3600 * Gst.SECOND),
                                  t // (60 * Gst.SECOND) % 60,
                                  t // Gst.SECOND % 60, t % Gst.SECOND)


class Counts:
    buffers = 0
    probe_faces = 0
    bus_faces = 0


def on_buffer(pad, info, counts):
    """Runs in the streaming thread: the metas live as long as the buffer,
    so they are read here, not handed to the main thread."""
    buf = info.get_buffer()
    counts.buffers += 1
    for i in range(GstFerEmotion.buffer_get_fer_emotion_meta_count(buf)):
        m = GstFerEmotion.buffer_get_nth_fer_emotion_meta(buf, i)
        say("probe " + describe(buf.pts, m.x, m.y, m.w, m.h, m.roi_id,
                                m.track_id,
                                m.label, m.confidence, m.class_labels,
                                m.probabilities))
        counts.probe_faces += 1
    return Gst.PadProbeReturn.OK


def on_message(s, counts):
    """One `feremotion` element message: every face, from `face-array`."""
    labels = s.get_value("label-array")
    for face in s.get_value("face-array"):
        say("bus   " + describe(
            s.get_value("timestamp"), face.get_value("x"), face.get_value("y"),
            face.get_value("width"), face.get_value("height"),
            face.get_value("roi-id"), face.get_value("track-id"),
            face.get_value("label"),
            face.get_value("confidence"), labels,
            face.get_value("probabilities")))
        counts.bus_faces += 1


def run(pipeline, counts):
    """Returns True at EOS, False after printing the first error."""
    bus = pipeline.get_bus()
    wait = Gst.CLOCK_TIME_NONE
    # an element that fails its state change has posted the error already
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        wait = 0
    ok = False
    while True:
        msg = bus.timed_pop_filtered(
            wait, Gst.MessageType.EOS | Gst.MessageType.ERROR
            | Gst.MessageType.ELEMENT)
        if msg is None:
            print("example-app.py: the pipeline did not start",
                  file=sys.stderr)
            break
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print("example-app.py: error from %s: %s\n%s" % (
                msg.src.get_name(), err.message, dbg or ""), file=sys.stderr)
            break
        if msg.type == Gst.MessageType.EOS:
            ok = True
            break
        s = msg.get_structure()
        if s is not None and s.get_name() == "feremotion":
            on_message(s, counts)
    pipeline.set_state(Gst.State.NULL)
    return ok


def main():
    parser = argparse.ArgumentParser(
        description="Prints the facial expression of every face of a photo "
        "or video FILE (or of any pipeline), from the buffer metadata and "
        "from the bus.")
    parser.add_argument("file", nargs="?", metavar="FILE")
    parser.add_argument("--model", "-m", help="a model name (fast) or a "
                        ".safetensors file (default: the shipped model)")
    parser.add_argument("--pipeline", "-p", metavar="DESC",
                        help="pipeline description instead of the file "
                        "pipeline; needs an element named feremotion")
    args = parser.parse_args()
    if not args.pipeline and not args.file:
        parser.error("give one FILE, or --pipeline DESC")
    if args.file and not os.path.isfile(args.file):
        parser.error("%s: no such file" % args.file)

    Gst.init(None)
    # facedetect logs every cascade Debian does not ship as an error
    os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
    needed = ["feremotion"] + ([] if args.pipeline else ["facedetect"])
    for name in needed:
        if Gst.ElementFactory.find(name) is None:
            print("example-app.py: no GStreamer element \"%s\" (%s)" % (
                name, "install gstreamer1.0-opencv" if name == "facedetect"
                else "set GST_PLUGIN_PATH to the build's gst/, or run under "
                "meson devenv"), file=sys.stderr)
            return 1
    try:
        pipeline = Gst.parse_launch(args.pipeline or FILE_PIPELINE)
    except GLib.Error as e:
        print("example-app.py: could not build the pipeline: %s" % e.message,
              file=sys.stderr)
        return 1
    fer = pipeline.get_by_name("feremotion")
    if fer is None:
        print("example-app.py: the pipeline has no element named "
              "\"feremotion\"", file=sys.stderr)
        return 1
    model = args.model
    if model is None and os.path.isfile(SHIPPED_MODEL):
        model = SHIPPED_MODEL
    if model is not None:
        fer.set_property("model", model)
    if not args.pipeline:
        pipeline.get_by_name("file").set_property("location", args.file)
    counts = Counts()
    fer.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer, counts)
    if not run(pipeline, counts):
        return 1
    print("%d buffers, %d faces from the metadata, %d from the bus" % (
        counts.buffers, counts.probe_faces, counts.bus_faces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
