#!/usr/bin/env python3
"""Writes the chorales' Soprano lines as a monophonic MIDI corpus: for each file of
../shared/data/bach-chorales-midi with a track named Soprano, that track and the
conductor tracks (tempo, meter, key), nothing else. The corpus models/README.md
trains the `play-bach` preset on, the closest thing at hand to the cello suites.

  soprano_lines.py SOURCE_FOLDER OUT_FOLDER     (needs mido: make test installs it)
"""
import pathlib
import sys

import mido


def soprano_only(path):
    midi = mido.MidiFile(path)
    conductor = [t for t in midi.tracks if not any(m.type == "note_on" and m.velocity > 0 for m in t)]
    named = [t for t in midi.tracks if any(m.type == "track_name" and m.name.strip().lower() == "soprano" for m in t)]
    if not named:
        return None
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    out.tracks.extend(conductor + named[:1])
    return out


def main():
    source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for path in sorted(source.glob("*.mid")):
        line = soprano_only(path)
        if line is None:
            skipped += 1
            continue
        line.save(target / path.name)
        written += 1
    print(f"{written} soprano lines written to {target}; {skipped} files have no Soprano track")


if __name__ == "__main__":
    main()
