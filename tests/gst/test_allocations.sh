#!/bin/sh
# No allocation per buffer in the steady state (TAP). gst-launch-1.0 runs a
# pipeline over 60 and then 260 GRAY8 48x48 frames with a malloc counter
# preloaded (tests/gst/malloc-count.c); the 200 extra frames must not add an
# allocation per frame (fewer than 10 in all; 0 on the development machine) for
#   - feremotion, frame mode, tta 5, without bus messages (the model's
#     preprocessing, its forward passes, the meta, the tracks);
#   - feremotion then feremotionexport writing JSON lines.
# What GStreamer's own APIs allocate per buffer by design is measured and
# printed, not asserted: a bus message (a GstStructure with GValues) and
# feremotionoverlay's cairo drawing (cairo allocates inside its text and
# fill calls).
#
# Environment (set by tests/gst/meson.build): FER_TOOLS_DIR (build/nn/tools),
# FER_SOURCE_DIR, FER_MALLOC_MODULE (the counter). Skips in a sanitizer
# build: its runtime owns malloc, and gst-launch-1.0 cannot load its plugin.
set -u

: "${FER_TOOLS_DIR:?set FER_TOOLS_DIR to build/nn/tools}"
: "${FER_SOURCE_DIR:?set FER_SOURCE_DIR to the source tree}"
# shellcheck source=tests/gst/tap.sh
. "$FER_SOURCE_DIR/tests/gst/tap.sh"
plugin_test_setup test-allocations
GST_REGISTRY_FORK=no
export GST_REGISTRY_FORK

echo "1..4"
if [ -z "${FER_MALLOC_MODULE:-}" ] || [ ! -f "$FER_MALLOC_MODULE" ]; then
  for i in 1 2 3 4; do
    skip "allocation count $i" "sanitizer build: its runtime owns malloc"
  done
  exit 0
fi

model=$tmp/model.safetensors
"$FER_TOOLS_DIR/fer-init" --out "$model" --seed 1 >"$tmp/out" 2>&1 \
  || { not_ok "fer-init writes a model"; exit 1; }
gst-inspect-1.0 feremotion >/dev/null 2>&1 # the registry, before counting

# allocations FRAMES PIPELINE-TAIL: the process's allocation count
allocations () {
  frames=$1; shift
  FER_MALLOC_COUNT=$tmp/count LD_PRELOAD=$FER_MALLOC_MODULE \
    gst-launch-1.0 -q videotestsrc num-buffers="$frames" \
    ! video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1 "$@" \
    >"$tmp/out" 2>&1 || return 1
  cat "$tmp/count"
}

# per_buffer NAME PIPELINE-TAIL: sets $extra to the allocations that 200
# more frames add, or fails
per_buffer () {
  name=$1; shift
  a=$(allocations 60 "$@") && b=$(allocations 260 "$@") || return 1
  extra=$((b - a))
  echo "# $name: $a allocations at 60 frames, $b at 260: $extra more for 200 frames"
}

fer="! feremotion model=$model mode=frame tta=5 threads=1"
for what in "feremotion (frame mode, no bus messages)" \
            "feremotion and feremotionexport"; do
  case $what in
    *export*) tail="$fer post-messages=false ! feremotionexport location=$tmp/out.jsonl ! fakesink" ;;
    *) tail="$fer post-messages=false ! fakesink" ;;
  esac
  # shellcheck disable=SC2086 # the pipeline's words
  if per_buffer "$what" $tail; then
    # one allocation per buffer would be 200; a few one-off ones (a table
    # of GLib's growing once) are not per buffer
    if [ "$extra" -lt 10 ]; then ok "$what: no allocation per buffer ($extra in 200 buffers)"
    else not_ok "$what: $extra allocations in 200 buffers"; fi
  else
    not_ok "$what: the pipeline ran"
  fi
done

# shellcheck disable=SC2086
if per_buffer "with bus messages" $fer ! fakesink; then
  ok "with bus messages: $((extra / 200)) allocations per buffer (GstStructure, GValues)"
else
  not_ok "with bus messages: the pipeline ran"
fi
# shellcheck disable=SC2086
if per_buffer "with feremotionoverlay" $fer post-messages=false ! videoconvert \
    ! video/x-raw,format=BGRx ! feremotionoverlay ! fakesink; then
  ok "with feremotionoverlay: $((extra / 200)) allocations per buffer (cairo, videoconvert)"
else
  not_ok "with feremotionoverlay: the pipeline ran"
fi
exit $failed
