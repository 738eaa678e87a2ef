#!/usr/bin/env python3
"""The tutorials' ingest, for side-by-side speed comparison with `fugue bench ingest`.

For each MIDI file: music21's converter.parse, partitionByInstrument, then walk
every note and chord into a token (the classical-piano tutorial's loop). Prints
one JSON line: {"files", "bytes", "seconds", "files_per_second", "mb_per_second"}.

  music21_ingest.py FILE...
"""
import json
import os
import sys
import time

from music21 import chord, converter, instrument, note


def tokens(path):
    midi = converter.parse(path)
    parts = instrument.partitionByInstrument(midi)
    elements = parts.parts[0].recurse() if parts else midi.flat.notes
    out = []
    for element in elements:
        if isinstance(element, note.Note):
            out.append(str(element.pitch))
        elif isinstance(element, chord.Chord):
            out.append(".".join(str(n) for n in element.normalOrder))
    return out


def main(paths):
    size = sum(os.path.getsize(path) for path in paths)
    started = time.perf_counter()
    for path in paths:
        tokens(path)
    seconds = time.perf_counter() - started
    print(json.dumps({"files": len(paths), "bytes": size, "seconds": seconds,
                      "files_per_second": len(paths) / seconds,
                      "mb_per_second": size / seconds / 1e6}))


if __name__ == "__main__":
    main(sys.argv[1:])
