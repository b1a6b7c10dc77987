#!/usr/bin/env bash
# AvatarCam set-up for macOS: OBS Virtual Camera (the camera AvatarCam sends to), BlackHole (the
# virtual microphone) and a launchd agent that starts the tray at login.
#
#   installers/macos/install.sh              set up (safe to run again)
#   installers/macos/install.sh --dry-run    print what it would do, change nothing
#   installers/macos/install.sh --uninstall  remove the launchd agent
#   options: --no-agent
#
# macOS has no scriptable virtual camera of its own: AvatarCam uses OBS Studio's (28 or newer),
# which must be started once from OBS ("Start Virtual Camera") to install its system extension.
set -euo pipefail

AGENT_ID=org.avatarcam.tray
AGENT=$HOME/Library/LaunchAgents/$AGENT_ID.plist
DRY_RUN=0
ACTION=install
AGENT_WANTED=1

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --uninstall) ACTION=uninstall ;;
    --no-agent) AGENT_WANTED=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
run() { if [ "$DRY_RUN" -eq 1 ]; then printf '   would run: %s\n' "$*"; else "$@"; fi; }

check_camera() {
  say "virtual camera (OBS Virtual Camera)"
  if [ -d /Applications/OBS.app ]; then
    note "OBS Studio is installed. Start it once and click 'Start Virtual Camera' to install the camera"
    note "extension (allow it in System Settings > Privacy & Security); then quit OBS: AvatarCam drives it."
  else
    note "OBS Studio is missing: install it (brew install --cask obs, or https://obsproject.com), then run this again"
  fi
}

check_mic() {
  say "virtual microphone (BlackHole)"
  if system_profiler SPAudioDataType 2>/dev/null | grep -q BlackHole; then
    note "BlackHole found: AvatarCam plays the delayed voice into it; apps pick 'BlackHole 2ch' as the microphone"
  elif command -v brew >/dev/null; then
    run brew install --cask blackhole-2ch
  else
    note "install BlackHole 2ch (https://existential.audio/blackhole/) for a lip-synced virtual microphone"
  fi
}

install_agent() {
  say "start at login (launchd agent)"
  local exe
  exe=$(command -v avatarcam || true)
  if [ -z "$exe" ]; then
    note "avatarcam is not on PATH: pip install avatarcam first, then run this again"
    return 0
  fi
  local content
  content=$(cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>$AGENT_ID</string>
  <key>ProgramArguments</key><array><string>$exe</string><string>tray</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
</dict>
</plist>
EOF
)
  if [ -f "$AGENT" ] && [ "$(cat "$AGENT")" = "$content" ]; then
    note "$AGENT is up to date"
    return 0
  fi
  if [ "$DRY_RUN" -eq 1 ]; then
    note "would write $AGENT and load it with launchctl"
    return 0
  fi
  mkdir -p "$(dirname "$AGENT")"
  printf '%s\n' "$content" >"$AGENT"
  launchctl unload "$AGENT" 2>/dev/null || true
  launchctl load "$AGENT"
  note "wrote and loaded $AGENT"
}

uninstall() {
  say "removing AvatarCam's launchd agent"
  if [ -f "$AGENT" ]; then
    run launchctl unload "$AGENT" || true
    run rm -f "$AGENT"
  fi
  note "OBS Studio and BlackHole stay installed"
}

[ "$DRY_RUN" -eq 1 ] && say "dry run: nothing is changed"
if [ "$ACTION" = uninstall ]; then
  uninstall
else
  check_camera
  check_mic
  if [ "$AGENT_WANTED" -eq 1 ]; then install_agent; fi
  say "done: pick 'OBS Virtual Camera' as the camera in your video app while AvatarCam runs"
fi
