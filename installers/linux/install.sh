#!/usr/bin/env bash
# AvatarCam set-up for Linux: the "AvatarCam" virtual camera (v4l2loopback), the "AvatarCam
# Microphone" virtual microphone (a PipeWire/PulseAudio null sink), a systemd user unit and an
# XDG autostart entry for the tray.
#
#   installers/linux/install.sh              set up (safe to run again: it only does what is missing)
#   installers/linux/install.sh --dry-run    print what it would do, change nothing
#   installers/linux/install.sh --reload     reload v4l2loopback (fixes "not a video output device"
#                                            with v4l2loopback 0.12 and exclusive_caps=1)
#   installers/linux/install.sh --uninstall  remove what it set up (packages stay installed)
#   options: --no-camera --no-mic --no-autostart --enable-service
#
# Run it as yourself, not with sudo: the microphone, unit and autostart entry belong to your
# user; it asks for sudo only for the kernel module.
set -euo pipefail

LABEL="AvatarCam"
VIDEO_NR=10
MODPROBE_CONF=/etc/modprobe.d/avatarcam.conf
MODULES_LOAD_CONF=/etc/modules-load.d/avatarcam.conf
MODULE_OPTIONS="video_nr=${VIDEO_NR} card_label=${LABEL} exclusive_caps=1"
SINK_NAME=avatarcam_mic
SINK_DESCRIPTION="AvatarCam Microphone"
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
PIPEWIRE_DROPIN=$CONFIG_HOME/pipewire/pipewire-pulse.conf.d/avatarcam-mic.conf
PULSE_DEFAULT_PA=$CONFIG_HOME/pulse/default.pa
PULSE_MARK="# avatarcam virtual microphone"
UNIT=$CONFIG_HOME/systemd/user/avatarcam.service
AUTOSTART=$CONFIG_HOME/autostart/avatarcam.desktop

DRY_RUN=0
ACTION=install
CAMERA=1
MIC=1
AUTOSTART_ENTRY=1
ENABLE_SERVICE=0

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --uninstall) ACTION=uninstall ;;
    --reload) ACTION=reload ;;
    --no-camera) CAMERA=0 ;;
    --no-mic) MIC=0 ;;
    --no-autostart) AUTOSTART_ENTRY=0 ;;
    --enable-service) ENABLE_SERVICE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

say() { printf '== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# run CMD...: run it, or only print it with --dry-run
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '   would run: %s\n' "$*"
  else
    "$@"
  fi
}

# as_root CMD...: the same, through sudo unless already root
as_root() {
  if [ "$(id -u)" -eq 0 ]; then run "$@"; else run sudo "$@"; fi
}

# write_file PATH CONTENT [root]: write only when the content differs (idempotent)
write_file() {
  local path=$1 content=$2 root=${3:-}
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    note "$path is up to date"
    return 0
  fi
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '   would write %s:\n' "$path"
    printf '%s\n' "$content" | sed 's/^/     | /'
    return 0
  fi
  if [ -n "$root" ]; then
    printf '%s\n' "$content" | as_root tee "$path" >/dev/null
  else
    mkdir -p "$(dirname "$path")"
    printf '%s\n' "$content" >"$path"
  fi
  note "wrote $path"
}

remove_file() {
  local path=$1 root=${2:-}
  [ -e "$path" ] || return 0
  if [ -n "$root" ]; then as_root rm -f "$path"; else run rm -f "$path"; fi
  note "removed $path"
}

avatarcam_device() {
  local dev
  for dev in /sys/class/video4linux/video*; do
    [ -r "$dev/name" ] || continue
    if [ "$(cat "$dev/name")" = "$LABEL" ]; then
      printf '/dev/%s\n' "$(basename "$dev")"
      return 0
    fi
  done
  return 1
}

module_version() { cat /sys/module/v4l2loopback/version 2>/dev/null || modinfo -F version v4l2loopback 2>/dev/null || true; }

install_module_package() {
  if modinfo v4l2loopback >/dev/null 2>&1; then
    note "v4l2loopback $(module_version) is available"
    return 0
  fi
  if command -v apt-get >/dev/null; then
    as_root apt-get install -y v4l2loopback-dkms "linux-headers-$(uname -r)"
  elif command -v dnf >/dev/null; then
    note "Fedora: v4l2loopback comes from RPM Fusion (https://rpmfusion.org/Configuration)"
    as_root dnf install -y v4l2loopback
  elif command -v pacman >/dev/null; then
    as_root pacman -S --needed --noconfirm v4l2loopback-dkms linux-headers
  elif command -v zypper >/dev/null; then
    as_root zypper --non-interactive install v4l2loopback-kmp-default
  else
    echo "install.sh: no known package manager; install v4l2loopback (0.13 or newer if you can) yourself" >&2
    return 1
  fi
}

setup_camera() {
  say "virtual camera \"$LABEL\" (v4l2loopback)"
  install_module_package
  for f in /etc/modprobe.d/*.conf; do
    [ -f "$f" ] && [ "$f" != "$MODPROBE_CONF" ] && grep -q '^options v4l2loopback' "$f" &&
      note "warning: $f also sets v4l2loopback options; only one 'options' line takes effect (merge them)"
  done
  write_file "$MODPROBE_CONF" "options v4l2loopback $MODULE_OPTIONS" root
  write_file "$MODULES_LOAD_CONF" "v4l2loopback" root
  local device
  if device=$(avatarcam_device); then
    note "$device is labelled $LABEL: nothing to load"
  elif lsmod 2>/dev/null | grep -q '^v4l2loopback'; then
    note "v4l2loopback is loaded without an $LABEL device; reloading it (programs using it must be closed)"
    reload_module
  else
    as_root modprobe v4l2loopback "video_nr=${VIDEO_NR}" "card_label=${LABEL}" exclusive_caps=1
  fi
  case "$(module_version)" in
    0.12*|0.11*|0.10*)
      note "v4l2loopback $(module_version) has a known bug with exclusive_caps=1: after a program stops"
      note "sending, the next is refused until the module is reloaded ($0 --reload)."
      note "AvatarCam keeps the device open for its whole life; v4l2loopback 0.13+ fixes it for good." ;;
  esac
}

reload_module() {
  as_root modprobe -r v4l2loopback || {
    echo "install.sh: v4l2loopback is in use; close the programs using the camera (and \`avatarcam ctl quit\`) first" >&2
    return 1
  }
  as_root modprobe v4l2loopback "video_nr=${VIDEO_NR}" "card_label=${LABEL}" exclusive_caps=1
}

sink_loaded() { command -v pactl >/dev/null && pactl list short sinks 2>/dev/null | cut -f2 | grep -qx "$SINK_NAME"; }

setup_mic() {
  say "virtual microphone \"$SINK_DESCRIPTION\""
  if ! command -v pactl >/dev/null; then
    note "pactl not found: install pipewire-pulse (or pulseaudio-utils) and run this again"
    return 0
  fi
  local server
  server=$(pactl info 2>/dev/null | sed -n 's/^Server Name: //p')
  # the module's arguments, as avatarcam's own hint gives them (audio/output.py PULSE_LOAD): mono, as
  # a microphone is; the description has a space, so it is quoted for the module and again for its
  # property list
  local props="sink_properties=\"device.description='$SINK_DESCRIPTION'\""
  local args="sink_name=$SINK_NAME channels=1 channel_map=mono $props"
  if printf '%s' "$server" | grep -qi pipewire; then
    write_file "$PIPEWIRE_DROPIN" "# $SINK_DESCRIPTION: apps pick \"Monitor of $SINK_DESCRIPTION\" as their microphone
pulse.cmd = [
    { cmd = \"load-module\" args = \"module-null-sink ${args//\"/\\\"}\" flags = [ ] }
]"
  else
    if [ -f "$PULSE_DEFAULT_PA" ] && grep -qF "$PULSE_MARK" "$PULSE_DEFAULT_PA"; then
      note "$PULSE_DEFAULT_PA already loads it"
    else
      local content
      content="$( [ -f "$PULSE_DEFAULT_PA" ] && cat "$PULSE_DEFAULT_PA" || echo ".include /etc/pulse/default.pa")
$PULSE_MARK
load-module module-null-sink $args"
      write_file "$PULSE_DEFAULT_PA" "$content"
    fi
  fi
  if sink_loaded; then
    note "the sink is loaded"
  else
    run pactl load-module module-null-sink "sink_name=$SINK_NAME" channels=1 channel_map=mono "$props" >/dev/null
  fi
}

avatarcam_exe() { command -v avatarcam || printf '%s\n' "$HOME/.local/bin/avatarcam"; }

setup_autostart() {
  say "systemd user unit and autostart entry"
  local exe
  exe=$(avatarcam_exe)
  write_file "$UNIT" "[Unit]
Description=AvatarCam: talking-portrait virtual camera
After=pipewire.service pipewire-pulse.service pulseaudio.service

[Service]
ExecStart=$exe live
Restart=on-failure
RestartSec=3

[Install]
WantedBy=default.target"
  if command -v systemctl >/dev/null; then
    run systemctl --user daemon-reload || true
    if [ "$ENABLE_SERVICE" -eq 1 ]; then
      run systemctl --user enable --now avatarcam.service
    else
      note "headless use: systemctl --user enable --now avatarcam (the tray entry below is for desktops)"
    fi
  fi
  if [ "$AUTOSTART_ENTRY" -eq 1 ]; then
    write_file "$AUTOSTART" "[Desktop Entry]
Type=Application
Name=AvatarCam
Comment=Talking-portrait virtual camera
Exec=$exe tray
Icon=camera-web
Terminal=false
X-GNOME-Autostart-enabled=true"
  fi
}

uninstall() {
  say "removing AvatarCam's set-up"
  if command -v systemctl >/dev/null && [ -f "$UNIT" ]; then
    run systemctl --user disable --now avatarcam.service || true
  fi
  remove_file "$UNIT"
  remove_file "$AUTOSTART"
  [ "$MIC" -eq 1 ] && uninstall_mic
  [ "$CAMERA" -eq 1 ] && uninstall_camera
  note "the v4l2loopback package stays installed (remove it with your package manager if nothing else uses it)"
}

uninstall_mic() {
  remove_file "$PIPEWIRE_DROPIN"
  if [ -f "$PULSE_DEFAULT_PA" ] && grep -qF "$PULSE_MARK" "$PULSE_DEFAULT_PA"; then
    if [ "$DRY_RUN" -eq 1 ]; then
      note "would remove the AvatarCam lines from $PULSE_DEFAULT_PA"
    else
      sed -i "/^$PULSE_MARK\$/,+1d" "$PULSE_DEFAULT_PA"
      note "removed the AvatarCam lines from $PULSE_DEFAULT_PA"
    fi
  fi
  if sink_loaded; then
    local module
    module=$(pactl list short modules | awk -v s="sink_name=$SINK_NAME" '$0 ~ s {print $1; exit}')
    [ -n "$module" ] && run pactl unload-module "$module"
  fi
  return 0
}

uninstall_camera() {
  remove_file "$MODPROBE_CONF" root
  remove_file "$MODULES_LOAD_CONF" root
  if avatarcam_device >/dev/null; then
    as_root modprobe -r v4l2loopback || note "v4l2loopback is in use; it goes at the next reboot"
  fi
  return 0
}

if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$ACTION" = install ]; then
  note "run this as yourself, not with sudo: the microphone and autostart entry are per-user (it asks for sudo itself)"
fi
[ "$DRY_RUN" -eq 1 ] && say "dry run: nothing is changed"

case "$ACTION" in
  install)
    [ "$CAMERA" -eq 1 ] && setup_camera
    [ "$MIC" -eq 1 ] && setup_mic
    setup_autostart
    say "done: pick \"$LABEL\" as the camera and \"Monitor of $SINK_DESCRIPTION\" as the microphone in your video app"
    ;;
  reload)
    say "reloading v4l2loopback"
    reload_module
    ;;
  uninstall)
    uninstall
    ;;
esac
