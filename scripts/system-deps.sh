#!/bin/sh
# Debian packages the test suite uses: Chromium (Playwright drives it), Hangul fonts (or screenshots show boxes),
# espeak-ng + sox + ffmpeg (voice prompts). Installs only what is missing.
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v sox >/dev/null 2>&1 || missing="$missing sox libsox-fmt-all"
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
fc-list 2>/dev/null | grep -qi nanum || missing="$missing fonts-nanum"
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
