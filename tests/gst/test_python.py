#!/usr/bin/python3
"""Python reads every face of every buffer (TAP).

A three-face frame, drawn here, goes three times through
`appsrc ! feremotion mode=roi ! feremotionexport ! fakesink`, each buffer
with three face ROI metas added from Python. A pad probe reads every
GstFerEmotionMeta through the GstFerEmotion-1.0 typelib, the bus messages
are read through their `face-array` field, and both must match the JSON
lines that feremotionexport (C) wrote in the same run: boxes, ROI ids,
labels, confidences and every class probability.

Run with Debian's python3-gi (/usr/bin/python3). Environment (set by
tests/gst/meson.build): GI_TYPELIB_PATH and LD_LIBRARY_PATH with build/gst,
GST_PLUGIN_PATH_1_0, FER_MODEL_PATH (the model "fast").
"""
import json
import os
import sys
import tempfile

try:
    import gi
except ImportError as e:
    print("1..0 # SKIP python3-gi is not installed (%s)" % e)
    sys.exit(0)

WIDTH, HEIGHT = 240, 96
BUFFERS = 3
# (x, y, w, h) of the three faces, shifted a little on every buffer
FACES = [(8, 16, 64, 64), (88, 12, 60, 70), (168, 20, 64, 60)]

n_tests = 0
failed = False


def check(ok, what):
    global n_tests, failed
    n_tests += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n_tests, what))
    if not ok:
        failed = True
    return ok


def finish():
    print("1..%d" % n_tests)
    sys.exit(1 if failed else 0)


try:
    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    gi.require_version("GstFerEmotion", "1.0")
    from gi.repository import Gst, GstVideo, GstFerEmotion
except (ImportError, ValueError) as e:
    check(False, "the GstFerEmotion-1.0 typelib (and Gst, GstVideo) load: %s"
          % e)
    finish()
check(True, "the GstFerEmotion-1.0 typelib loads")


def draw_frame(k):
    """Three different synthetic faces (ellipse, eyes, a mouth that opens
    with the face's index) on a mid-grey background."""
    img = bytearray([128]) * (WIDTH * HEIGHT)
    for i, (fx, fy, fw, fh) in enumerate(FACES):
        fx += k
        cx, cy = fx + fw / 2, fy + fh / 2
        for y in range(fy, fy + fh):
            for x in range(fx, fx + fw):
                dx, dy = (x - cx) / (fw / 2), (y - cy) / (fh / 2)
                v = 128
                if dx * dx + dy * dy <= 1:
                    v = 200 - 30 * i
                    for ex in (-0.35, 0.35):  # eyes
                        if (dx - ex) ** 2 + (dy + 0.25) ** 2 < 0.02:
                            v = 30
                    if abs(dx) < 0.4 and 0.3 < dy < 0.35 + 0.15 * i:  # mouth
                        v = 40
                img[y * WIDTH + x] = v
    return bytes(img)


def face_of_meta(buf, m):
    """One face as the JSON lines write it, from a GstFerEmotionMeta; the
    per-class values through the fields and through the accessors."""
    probs = list(m.probabilities)
    labels = list(m.class_labels)
    same = (probs == list(m.get_probabilities())
            and labels == list(m.get_class_labels())
            and all(m.get_probability(i) == probs[i]
                    and m.get_class_label(i) == labels[i]
                    for i in range(m.n_classes))
            and m.get_class_label(m.n_classes) is None
            and m.get_probability(m.n_classes) == -1)
    same = same and (m.track_id < 1 or GstFerEmotion.
                     buffer_get_fer_emotion_meta_for_track(buf, m.track_id)
                     .track_id == m.track_id)
    return {"x": m.x, "y": m.y, "w": m.w, "h": m.h, "roi_id": m.roi_id,
            "track_id": m.track_id, "label": m.label, "label_id": m.label_id,
            "confidence": m.confidence,
            "probabilities": dict(zip(labels, probs)),
            "accessors_agree": same}


def face_of_message(face, labels):
    probs = face.get_value("probabilities")
    return {"x": face.get_value("x"), "y": face.get_value("y"),
            "w": face.get_value("width"), "h": face.get_value("height"),
            "roi_id": face.get_value("roi-id"),
            "track_id": face.get_value("track-id"),
            "label": face.get_value("label"),
            "label_id": face.get_value("label_id"),
            "confidence": face.get_value("confidence"),
            "probabilities": dict(zip(labels, probs))}


def same_faces(got, want):
    """Boxes, ids and labels equal; numbers equal to float precision (the
    meta holds floats, the message and the JSON doubles)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        for key in ("x", "y", "w", "h", "roi_id", "track_id", "label",
                    "label_id"):
            if g[key] != w[key]:
                return False
        if abs(g["confidence"] - w["confidence"]) > 1e-6:
            return False
        if set(g["probabilities"]) != set(w["probabilities"]):
            return False
        if any(abs(g["probabilities"][c] - w["probabilities"][c]) > 1e-6
               for c in w["probabilities"]):
            return False
    return True


Gst.init(None)
tmp = tempfile.mkdtemp(prefix="test-python.")
jsonl = os.path.join(tmp, "faces.jsonl")
pipeline = Gst.parse_launch(
    "appsrc name=src format=time caps=video/x-raw,format=GRAY8,"
    "width=%d,height=%d,framerate=10/1 "
    "! feremotion mode=roi ! feremotionexport name=export ! fakesink name=sink"
    % (WIDTH, HEIGHT))
pipeline.get_by_name("export").set_property("location", jsonl)

probe_faces = []  # per buffer: faces read in the probe
probe_ok = []


def on_buffer(pad, info):
    buf = info.get_buffer()
    n = GstFerEmotion.buffer_get_fer_emotion_meta_count(buf)
    faces = [face_of_meta(
        buf, GstFerEmotion.buffer_get_nth_fer_emotion_meta(buf, i))
        for i in range(n)]
    probe_ok.append(
        GstFerEmotion.buffer_get_nth_fer_emotion_meta(buf, n) is None
        and all(f.pop("accessors_agree") for f in faces))
    probe_faces.append(faces)
    return Gst.PadProbeReturn.OK


pipeline.get_by_name("sink").get_static_pad("sink").add_probe(
    Gst.PadProbeType.BUFFER, on_buffer)
pipeline.set_state(Gst.State.PLAYING)
src = pipeline.get_by_name("src")
for k in range(BUFFERS):
    buf = Gst.Buffer.new_wrapped(draw_frame(k))
    buf.pts = k * Gst.SECOND // 10
    buf.duration = Gst.SECOND // 10
    for i, (x, y, w, h) in enumerate(FACES):
        roi = GstVideo.buffer_add_video_region_of_interest_meta(
            buf, "face", x + k, y, w, h)
        roi.id = i
    src.emit("push-buffer", buf)
src.emit("end-of-stream")

bus = pipeline.get_bus()
bus_faces = []
bus_labels = []
error = None
while True:
    msg = bus.timed_pop_filtered(
        60 * Gst.SECOND,
        Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
    if msg is None:
        error = "no EOS within 60 s"
        break
    if msg.type == Gst.MessageType.ERROR:
        error = "%s (%s)" % msg.parse_error()
        break
    if msg.type == Gst.MessageType.EOS:
        break
    s = msg.get_structure()
    if s.get_name() != "feremotion":
        continue
    labels = s.get_value("label-array")
    bus_labels.append(labels)
    bus_faces.append([face_of_message(f, labels)
                      for f in s.get_value("face-array")])
pipeline.set_state(Gst.State.NULL)
if not check(error is None, "the pipeline runs to EOS (%s)" % error):
    finish()

with open(jsonl) as f:
    lines = [json.loads(line) for line in f]
os.unlink(jsonl)
os.rmdir(tmp)
json_faces = [line["faces"] for line in lines]

check(len(json_faces) == BUFFERS
      and all(len(f) == len(FACES) for f in json_faces),
      "feremotionexport wrote %d lines of %d faces (got %s)"
      % (BUFFERS, len(FACES), [len(f) for f in json_faces]))
check(len(probe_faces) == BUFFERS
      and all(len(f) == len(FACES) for f in probe_faces),
      "the probe read %d faces on each of %d buffers (got %s)"
      % (len(FACES), BUFFERS, [len(f) for f in probe_faces]))
check(all(probe_ok),
      "field reads and accessors agree, nth past the last face is None")
check(all(len({(f["x"], f["y"]) for f in faces}) == len(FACES)
          for faces in probe_faces),
      "the probe's faces are distinct boxes, one per ROI")
check([[f["roi_id"] for f in faces] for faces in probe_faces]
      == [list(range(len(FACES)))] * BUFFERS,
      "the probe's roi_ids are 0, 1, 2 on every buffer")
tracks = [[f["track_id"] for f in faces] for faces in probe_faces]
check(len(set(tracks[0])) == len(FACES) and min(tracks[0]) >= 1
      and all(t == tracks[0] for t in tracks),
      "the probe's track_ids are distinct, from 1, and the same on every "
      "buffer (got %s)" % tracks[0])
check(all(same_faces(p, j) for p, j in zip(probe_faces, json_faces)),
      "every face read in the probe equals the JSON line's (box, roi_id, "
      "track_id, label, confidence, probabilities)")
check(len(bus_faces) == BUFFERS
      and all(len(f) == len(FACES) for f in bus_faces),
      "the bus carried %d messages of %d faces (got %s)"
      % (BUFFERS, len(FACES), [len(f) for f in bus_faces]))
check(all(labels == list(json_faces[0][0]["probabilities"])
          for labels in bus_labels),
      "the message's label-array is the model's classes in order")
check(all(same_faces(b, j) for b, j in zip(bus_faces, json_faces)),
      "every face read from the bus equals the JSON line's")
labels_seen = sorted({f["label"] for faces in probe_faces for f in faces})
print("# labels seen: %s" % ", ".join(labels_seen))
finish()
