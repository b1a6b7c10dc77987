#!/usr/bin/env bash
# Runs inside the v4l2loopback VM (../shared/tools/vm) from tests/test_vm_camera.py, in the shared
# directory that holds: avatarcam/ (the package source), frames.npy (frames rendered on the host),
# wheels/ (pyvirtualcam, numpy), send.py, check.py, browser.py.
# Prints one "RESULT name=value" line per finding; exits non-zero when a check fails.
set -u
cd "$(dirname "$0")" || exit 3
rc=0
result() { echo "RESULT $1=$2"; }
# start_sender LOG ARGS...: start send.py in the background (output to LOG) and wait (up to 120 s:
# the VM is emulated) until it has opened the device and written its first frame; sets $sender
start_sender() {
  local log=$1
  shift
  rm -f sender.ready
  $PY send.py "$@" > "$log" 2>&1 &
  sender=$!
  for _ in $(seq 1200); do
    [ -e sender.ready ] && return 0
    kill -0 "$sender" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

python3 -m venv /root/venv && /root/venv/bin/pip install -q --no-index --find-links wheels pyvirtualcam numpy || exit 3
PY=/root/venv/bin/python
result module_version "$(cat /sys/module/v4l2loopback/version 2>/dev/null || modinfo -F version v4l2loopback)"

echo "--- 1. AvatarCam's sink (found by label) + pacer -> the device, read back by ffmpeg"
start_sender send1.log --frames 100 --fps 10
ffmpeg -hide_banner -loglevel error -f v4l2 -i /dev/video10 -frames:v 30 -f rawvideo -pix_fmt rgb24 cap.rgb
result ffmpeg_rc $?
wait "$sender"; result sender_rc $?
cat send1.log
$PY check.py || rc=1

echo "--- 2. a second producer without reloading the module (v4l2loopback 0.12 bug)"
$PY send.py --frames 10 > send2.log 2>&1
result second_open_rc $?
grep -o 'avatarcam: error: .*' send2.log | head -1
if grep -q -- '--reload' send2.log; then result bug_explained yes; else result bug_explained no; fi

echo "--- 3. after v4l2loopback-reload a new session works again"
v4l2loopback-reload
$PY send.py --frames 30 > send3.log 2>&1
result after_reload_rc $?

if command -v chromium >/dev/null; then
  echo "--- 4. a browser lists AvatarCam (enumerateDevices) while frames are sent"
  v4l2loopback-reload
  start_sender send4.log --frames 5000 --fps 10
  timeout 450 python3 browser.py > browser.log 2>&1
  kill "$sender" 2>/dev/null; wait "$sender" 2>/dev/null
  cat browser.log
  if grep -q 'videoinput:AvatarCam' browser.log; then
    result browser_lists_avatarcam yes
  else
    result browser_lists_avatarcam no
    rc=1
  fi
fi
exit $rc
