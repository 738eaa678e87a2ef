#!/usr/bin/env bash
# Installs the General MIDI SoundFonts into ./soundfonts from Debian's packages,
# unpacked with dpkg-deb (no root install):
# - fluid-soundfont-gm: FluidR3_GM.sf2 (148 MB), what the server renders audio with;
# - fluidr3mono-gm-soundfont: FluidR3Mono_GM.sf3 (23 MB, the same font in mono with
#   Ogg-compressed samples), what the page's synthesizer loads.
# Both are MIT (Frank Wen; the mono edition Michael Cowgill): each package's
# copyright file is copied beside its font. Never committed (.gitignore).
# Idempotent: when both fonts are there, it does nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/soundfonts"
# package  file in the package  name in ./soundfonts
fonts=(
  "fluid-soundfont-gm usr/share/sounds/sf2/FluidR3_GM.sf2 FluidR3_GM.sf2"
  "fluidr3mono-gm-soundfont usr/share/fluidr3mono-gm-soundfont/FluidR3Mono_GM.sf3 FluidR3Mono_GM.sf3"
)

missing=()
for font in "${fonts[@]}"; do
  read -r package path name <<<"$font"
  [ -s "$dir/$name" ] || missing+=("$font")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for font in "${missing[@]}"; do
  read -r package path name <<<"$font"
  echo "setup-soundfont: installing $name from Debian's $package into $dir (one time)" >&2
  if ! (cd "$work" && apt-get download "$package" >/dev/null 2>&1); then
    # A fresh machine may have no package lists yet.
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq >/dev/null; fi
    (cd "$work" && apt-get download "$package" >/dev/null)
  fi
  dpkg-deb -x "$work/${package}"_*.deb "$work/$package"
  cp "$work/$package/$path" "$dir/$name.partial"
  cp "$work/$package/usr/share/doc/$package/copyright" "$dir/$name.copyright"
  mv "$dir/$name.partial" "$dir/$name"
done
