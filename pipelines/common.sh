# Shared set-up of the sample pipelines, sourced first by each script: at
# the script's top level, so the `shift` below consumes the script's own
# arguments.
set -eu

prog=$(basename "$0")
die () { echo "$prog: $*" >&2; exit 2; }

# Interrupted (Ctrl-C, kill, systemd or docker stop): exit 130 / 143, never
# 0, and run the scripts' EXIT traps (the shell skips them when a signal
# kills it).
trap 'exit 130' INT
trap 'exit 143' TERM
# the caller's stderr, for messages while a pipeline's output goes to a log
exec 3>&2

# run_pipeline ARG...: gst-launch-1.0 -e ARG..., its exit status. INT or
# TERM sent to the script while it runs is passed on as INT: gst-launch-1.0
# -e then sends EOS, so files and muxers are finished; the script then
# says so and exits 130 / 143 rather than carrying on as if all went well.
run_pipeline () {
  interrupted=0
  gst-launch-1.0 -e "$@" &
  pipeline_pid=$!
  trap 'interrupted=130; kill -INT "$pipeline_pid" 2>/dev/null || :' INT
  trap 'interrupted=143; kill -INT "$pipeline_pid" 2>/dev/null || :' TERM
  while :; do
    pipeline_status=0
    wait "$pipeline_pid" || pipeline_status=$?
    # a trapped signal ends the wait, not the pipeline: wait until it is done
    kill -0 "$pipeline_pid" 2>/dev/null || break
  done
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ "$interrupted" -ne 0 ]; then
    echo "$prog: interrupted; stopped the pipeline (what it wrote so far is complete)" >&3
    exit "$interrupted"
  fi
  return "$pipeline_status"
}

# The progress lines of gst-launch-1.0 (-m, -e): what is left once they go
# is the error and its cause.
launch_errors () {
  grep -v -E '^(Got message|Got EOS|Setting pipeline|Pipeline is|Redistribute|New clock|Execution ended|Freeing pipeline|EOS on shutdown|Waiting for EOS)' "$1" >&2
}

# The model: `--model M.safetensors` (or a model name such as `fast`) as
# the first argument, else $FER_MODEL, else the default model shipped in
# the checkout's models/, where names are looked up too.
repo=$(cd "$(dirname "$0")/.." && pwd)
FER_MODEL_PATH=${FER_MODEL_PATH:+$FER_MODEL_PATH:}$repo/models
export FER_MODEL_PATH
model=${FER_MODEL:-$repo/models/feremotion-resnet18-fer2013.safetensors}
if [ "${1:-}" = --model ]; then
  [ $# -ge 2 ] || die "--model needs a file"
  model=$2
  shift 2
fi

# A file must exist; a name is looked up by the element, whose error lists
# the names that exist.
require_model () {
  case $model in
    */*|*.safetensors)
      [ -f "$model" ] || die "model $model: no such file (pass --model M.safetensors or a model name, or set FER_MODEL)" ;;
  esac
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

# The face detector of the video scripts, as gst-launch-1.0 words (split
# unquoted): faces under 48 pixels, the model's input size, are too
# blurred to read; min-neighbors=5 rather than 3 drops weak detections (at
# 3, a JPEG copy of astronaut.png gets a second "face" on her suit).
# shellcheck disable=SC2034 # used by the scripts that source this file
detect="facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5"

# video_setup [ELEMENT...]: the checks of a script that reads the video
# $input with facedetect and feremotion (and the ELEMENTs named), and $log,
# a file for gst-launch-1.0's output, removed at exit.
# shellcheck disable=SC2154 # $input is the script's
video_setup () {
  require_model
  [ -f "$input" ] || die "input $input: no such file"
  for element in feremotion facedetect "$@"; do
    require_element "$element"
  done
  log=$(mktemp "${TMPDIR:-/tmp}/$prog.XXXXXX")
  trap 'rm -f "$log"' EXIT
}

# pipeline_failed: the pipeline's errors from $log, then exit 1.
pipeline_failed () {
  launch_errors "$log"
  echo "$prog: the pipeline failed on $input" >&2
  exit 1
}
