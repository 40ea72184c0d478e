# TAP helpers shared by the shell tests of tests/gst (sourced; they need
# $tmp, the test's scratch folder: plugin_test_setup makes it). Each result is numbered; not_ok shows
# $tmp/out, the output of the command that failed, as TAP comments.
n=0
failed=0
ok () { n=$((n + 1)); echo "ok $n - $1"; }
not_ok () {
  n=$((n + 1)); failed=1
  echo "not ok $n - $1"
  [ -f "$tmp/out" ] && sed 's/^/# /' "$tmp/out" | head -40
  return 0
}
skip () { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
# check DESCRIPTION COMMAND...: ok when COMMAND succeeds, its output shown
# as TAP comments when it does not
check () {
  desc=$1; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$desc"; else not_ok "$desc"; fi
}
# kill_once_written FILE PID SIGNAL: once FILE has content (at most 30 s
# on), half a second later sends SIGNAL to the background job PID and
# waits for it; its exit status is then in $status.
kill_once_written () {
  i=0
  while [ ! -s "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  sleep 0.5
  kill -"$3" "$2"
  status=0
  wait "$2" || status=$?
}
# expect_status DESCRIPTION EXPECTED: ok when $status is EXPECTED
expect_status () {
  if [ "$status" -eq "$2" ]; then
    ok "$1"
  else
    echo "exit status $status" >>"$tmp/out"
    not_ok "$1"
  fi
}
# plugin_test_setup NAME: the start of a test that runs gst-launch-1.0 on
# the build's plugin: $build (from FER_TOOLS_DIR), a scratch folder $tmp
# removed at exit (an interrupted test exits 130 or 143), and GStreamer
# pointed at build/gst with a registry of its own.
plugin_test_setup () {
  build=$(cd "$FER_TOOLS_DIR/../.." && pwd)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  unset GST_PLUGIN_PATH_1_0 GST_REGISTRY_1_0
  GST_PLUGIN_PATH=$build/gst
  GST_REGISTRY=$tmp/registry.bin
  export GST_PLUGIN_PATH GST_REGISTRY
}
