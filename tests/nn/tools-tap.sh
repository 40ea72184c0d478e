# TAP helpers shared by the shell tests of the tools in tests/nn (sourced,
# in the test's scratch folder). Each result is numbered; a failure shows
# the exit status and the output of the last `run` as TAP comments.
n=0
pass () { n=$((n + 1)); echo "ok $n - $1"; }

# fail DESCRIPTION: the last command's output goes to the log as comments
# (progress lines left out).
fail ()
{
  n=$((n + 1))
  echo "not ok $n - $1"
  echo "# exit status ${status:-?}"
  sed 's/^/# stdout: /' out 2>/dev/null | tail -20
  sed 's/^/# stderr: /' err 2>/dev/null | grep -v 'images (' | tail -20
}

# run CMD...: runs a tool, keeping stdout, stderr and the exit status.
run () { "$@" >out 2>err; status=$?; }

# check DESCRIPTION CONDITION...: CONDITION is a command (often `test`).
check () { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }

# failed_naming STATUS TEXT...: the last run exited with STATUS (not from a
# signal) and its stderr holds every TEXT.
failed_naming ()
{
  [ "$status" -eq "$1" ] || return 1
  shift
  for t in "$@"; do grep -qF -- "$t" err || return 1; done
}
