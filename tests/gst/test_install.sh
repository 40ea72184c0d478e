#!/bin/sh
# The installed layout (TAP): `meson install --destdir` puts the shipped
# model exactly where the installed element's default `model` property
# points, and the installed element loads it and classifies frames with it.
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
unset GST_PLUGIN_PATH GST_REGISTRY

gst-inspect-1.0 feremotion >"$tmp/inspect" 2>&1
default=$(sed -n '/^  model /,/Default:/s/.*Default: "\(.*\)"/\1/p' "$tmp/inspect" | head -1)
cp "$tmp/inspect" "$tmp/out"
if [ -n "$default" ] && [ "$tmp/root$default" = "$installed_model" ]; then
  ok "the element's default model ($default) is the installed file"
else
  not_ok "the element's default model ('$default') is the installed file"
fi

# The installed element with the installed model: one classification per
# frame on its bus.
if gst-launch-1.0 -m videotestsrc num-buffers=3 pattern=ball \
    ! video/x-raw,width=96,height=96 ! feremotion model="$installed_model" \
    ! fakesink >"$tmp/out" 2>&1 \
    && [ "$(grep -c 'element): feremotion' "$tmp/out")" -eq 3 ]; then
  ok "the installed element classifies 3 frames with the installed model"
else
  not_ok "the installed element classifies 3 frames with the installed model"
fi
finish
