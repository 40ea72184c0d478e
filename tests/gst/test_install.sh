#!/bin/sh
# The installed layout (TAP): `meson install --destdir` puts the shipped
# model where the installed element's default `model` ("fast") is looked
# up, and the installed element loads it and classifies frames with it;
# gst-inspect lists the model names; a name not installed is refused. And
# `meson devenv` does the same from the build tree.
#
# Environment (set by tests/meson.build): FER_TOOLS_DIR (build/nn/tools),
# FER_SOURCE_DIR. The build directory is FER_TOOLS_DIR/../..
set -u

: "${FER_TOOLS_DIR:?set FER_TOOLS_DIR to build/nn/tools}"
: "${FER_SOURCE_DIR:?set FER_SOURCE_DIR to the source tree}"
build=$(cd "$FER_TOOLS_DIR/../.." && pwd)
name=feremotion-resnet18-fer2013.safetensors
shipped=$FER_SOURCE_DIR/models/$name
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# shellcheck source=tests/gst/tap.sh
. "$FER_SOURCE_DIR/tests/gst/tap.sh"
finish () { echo "1..$n"; exit $failed; }

# Uninstalled: `meson devenv -C build` runs the README's element examples
# from the build tree, the plugin and the model "fast" found there.
if env -u GST_PLUGIN_PATH -u GST_PLUGIN_PATH_1_0 -u FER_MODEL_PATH \
    GST_REGISTRY_1_0="$tmp/devenv-registry.bin" \
    meson devenv -C "$build" sh -c 'gst-inspect-1.0 feremotion >/dev/null \
      && gst-launch-1.0 -m videotestsrc num-buffers=3 \
        ! video/x-raw,width=96,height=96 ! feremotion ! fakesink' >"$tmp/out" 2>&1 \
    && [ "$(grep -c 'element): feremotion' "$tmp/out")" -eq 3 ]; then
  ok "meson devenv: the built plugin classifies 3 frames with the model \"fast\""
else
  not_ok "meson devenv: the built plugin classifies 3 frames with the model \"fast\""
fi

if ! meson install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/out" 2>&1; then
  not_ok "meson install --destdir"
  finish
fi
ok "meson install --destdir"

installed_model=$(find "$tmp/root" -name "$name" | head -1)
plugin=$(find "$tmp/root" -name libgstferemotion.so | head -1)
if [ -n "$installed_model" ] && cmp -s "$installed_model" "$shipped"; then
  ok "the shipped model is installed (${installed_model#"$tmp/root"})"
else
  not_ok "the shipped model is installed (found '$installed_model')"
fi
if [ -z "$plugin" ]; then
  not_ok "the plugin is installed"
  finish
fi
ok "the plugin is installed (${plugin#"$tmp/root"})"

# The installed plugin finds its libraries under the destdir's libdir.
libdir=$(dirname "$(find "$tmp/root" -name 'libfernn.so*' | head -1)")
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GST_PLUGIN_PATH_1_0="$(dirname "$plugin")"
export GST_REGISTRY_1_0="$tmp/registry.bin"
unset GST_PLUGIN_PATH GST_REGISTRY FER_MODEL_PATH

# The installed typelib (GstFerEmotion-1.0, for Python) loads the installed
# meta library and reads a face back.
typelib=$(find "$tmp/root" -name GstFerEmotion-1.0.typelib | head -1)
if ! /usr/bin/python3 -c 'import gi' 2>/dev/null; then
  skip "the installed typelib reads a face from Python" "python3-gi is not installed"
elif [ -n "$typelib" ] && [ -n "$(find "$tmp/root" -name GstFerEmotion-1.0.gir)" ] \
    && GI_TYPELIB_PATH=$(dirname "$typelib") /usr/bin/python3 -c '
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstFerEmotion", "1.0")
from gi.repository import Gst, GstFerEmotion
Gst.init(None)
buf = Gst.Buffer.new()
GstFerEmotion.buffer_add_fer_emotion_meta(buf, 1, 2, 3, 4, 0, ["a", "b"], [0.25, 0.75])
m = GstFerEmotion.buffer_get_nth_fer_emotion_meta(buf, 0)
assert GstFerEmotion.buffer_get_fer_emotion_meta_count(buf) == 1
assert (m.x, m.h, m.label, list(m.class_labels)) == (1, 4, "b", ["a", "b"])
' >"$tmp/out" 2>&1; then
  ok "the installed typelib reads a face from Python (${typelib#"$tmp/root"})"
else
  not_ok "the installed typelib and .gir, read from Python (found '$typelib')"
fi

# The installed models folder, as FER_MODEL_PATH names it for a destdir
# install (installed for real, it is $datadir/feremotion, searched anyway).
FER_MODEL_PATH=$(dirname "$installed_model")
export FER_MODEL_PATH
gst-inspect-1.0 feremotion >"$tmp/inspect" 2>&1
default=$(sed -n '/^  model /,/Default:/s/.*Default: "\(.*\)"/\1/p' "$tmp/inspect" | head -1)
cp "$tmp/inspect" "$tmp/out"
if [ "$default" = fast ]; then
  ok "the element's default model is the name \"fast\""
else
  not_ok "the element's default model is the name \"fast\" (got '$default')"
fi
# The accurate model ships too, but a GPU window's tree goes without it
# (docs/gpu.md): when the source tree has it, it is installed and its name
# exists.
accurate=feremotion-resnet18-fer2013-accurate.safetensors
if [ -f "$FER_SOURCE_DIR/models/$accurate" ]; then
  names="fast, accurate, feremotion-resnet18-fer2013, feremotion-resnet18-fer2013-accurate"
else
  names="fast, feremotion-resnet18-fer2013"
fi
# gst-inspect says which names exist (the blurb may wrap)
if tr -d '\n' <"$tmp/inspect" | tr -s ' ' | grep -q "found here: $names"; then
  ok "gst-inspect lists the installed model names"
else
  not_ok "gst-inspect lists the installed model names"
fi

# The installed element with its default model: one classification per
# frame on its bus.
if gst-launch-1.0 -m videotestsrc num-buffers=3 pattern=ball \
    ! video/x-raw,width=96,height=96 ! feremotion \
    ! fakesink >"$tmp/out" 2>&1 \
    && [ "$(grep -c 'element): feremotion' "$tmp/out")" -eq 3 ]; then
  ok "the installed element classifies 3 frames with the default model"
else
  not_ok "the installed element classifies 3 frames with the default model"
fi
if [ -f "$FER_SOURCE_DIR/models/$accurate" ]; then
  if cmp -s "$(dirname "$installed_model")/$accurate" "$FER_SOURCE_DIR/models/$accurate" \
      && gst-launch-1.0 -m videotestsrc num-buffers=2 pattern=ball \
        ! video/x-raw,width=96,height=96 ! feremotion model=accurate \
        ! fakesink >"$tmp/out" 2>&1 \
      && [ "$(grep -c 'element): feremotion' "$tmp/out")" -eq 2 ]; then
    ok "the accurate model is installed and model=accurate classifies 2 frames"
  else
    not_ok "the accurate model is installed and model=accurate classifies 2 frames"
  fi
fi
# and a name that is not installed is refused with the names that are
if gst-launch-1.0 videotestsrc num-buffers=1 ! feremotion model=nosuch \
    ! fakesink >"$tmp/out" 2>&1; then
  not_ok "model=nosuch (not installed) is refused"
elif grep -q "models there: $names" "$tmp/out"; then
  ok "model=nosuch (not installed) is refused with the names that exist"
else
  not_ok "model=nosuch (not installed) is refused with the names that exist"
fi
finish
