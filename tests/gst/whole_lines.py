"""Checks a JSON Lines file written by feremotionexport and then stopped:
it ends with a newline, every line parses, and the line count is in range.

    whole_lines.py FILE MIN_LINES [MAX_LINES|- [FACES_PER_LINE]]
"""
import json
import sys

path, min_lines = sys.argv[1], int(sys.argv[2])
max_lines = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" \
    else None
faces = int(sys.argv[4]) if len(sys.argv) > 4 else None
data = open(path, "rb").read()
assert data.endswith(b"\n"), "ends mid-line: %r" % data[-60:]
lines = data.decode().splitlines()
for i, line in enumerate(lines):
    frame = json.loads(line)
    if faces is not None:
        assert len(frame["faces"]) == faces, \
            "line %d: %d faces" % (i + 1, len(frame["faces"]))
assert len(lines) >= min_lines, "only %d lines" % len(lines)
assert max_lines is None or len(lines) <= max_lines, \
    "%d lines: not interrupted?" % len(lines)
print("%d whole lines" % len(lines))
