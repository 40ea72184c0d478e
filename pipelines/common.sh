# Shared set-up of the sample pipelines, sourced first by each script: at
# the script's top level, so the `shift` below consumes the script's own
# arguments.
set -eu

prog=$(basename "$0")
die () { echo "$prog: $*" >&2; exit 2; }

# The model: `--model M.safetensors` as the first argument, else $FER_MODEL,
# else the default model shipped in the checkout's models/.
repo=$(cd "$(dirname "$0")/.." && pwd)
model=${FER_MODEL:-$repo/models/feremotion-resnet18-fer2013.safetensors}
if [ "${1:-}" = --model ]; then
  [ $# -ge 2 ] || die "--model needs a file"
  model=$2
  shift 2
fi

require_model () {
  [ -f "$model" ] || die "model $model: no such file (pass --model M.safetensors or set FER_MODEL)"
}

# From a checkout, use the plugin just built rather than an installed one.
build=${FER_BUILD_DIR:-$repo/build}
if [ -d "$build/gst" ]; then
  GST_PLUGIN_PATH=$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}
  export GST_PLUGIN_PATH
fi
# facedetect loads nose/mouth/eye cascades that Debian's opencv-data does
# not ship; OpenCV logs each miss as an error although only the face
# cascade (which is shipped) is needed here.
OPENCV_LOG_LEVEL=${OPENCV_LOG_LEVEL:-FATAL}
export OPENCV_LOG_LEVEL

# require_element NAME: stops with a hint when the element is missing.
require_element () {
  case $1 in
    facedetect) hint="install gstreamer1.0-opencv" ;;
    *) hint="build the project (meson setup build && ninja -C build) or set GST_PLUGIN_PATH" ;;
  esac
  gst-inspect-1.0 "$1" >/dev/null 2>&1 \
    || die "GStreamer element $1 not found: $hint"
}
