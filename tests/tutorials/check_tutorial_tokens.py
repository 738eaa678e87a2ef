#!/usr/bin/env python3
"""The tutorial presets against their sources: for each tutorial parse, the tokens
music21 gives (tutorial_tokens.py, the tutorials' own code) and the tokens fugue
gives (`fugue tokens --preset ...`), compared file by file on every chorale.

  check_tutorial_tokens.py FUGUE_BINARY MIDI_FOLDER

Prints one line per mode and every file that differs (with the first difference),
and exits 1 if any file differs or either side has files the other lacks.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import tutorial_tokens

PRESETS = {"play-bach": "play-bach", "classical-piano": "classical-piano"}


def first_difference(ours, theirs):
    index = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return index, ours[index:index + 4], theirs[index:index + 4]


def main():
    fugue, folder = sys.argv[1], Path(sys.argv[2])
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mid", ".midi"))
    failed = False
    for mode, preset in PRESETS.items():
        started = time.perf_counter()
        theirs = {f.name: tutorial_tokens.MODES[mode](f) for f in files}
        music21_seconds = time.perf_counter() - started
        printed = subprocess.run([fugue, "tokens", "--preset", preset, str(folder)],
                                 check=True, capture_output=True, text=True).stdout
        report = json.loads(printed)
        ours, rejected = report["files"], report["rejected"]
        differ = sorted(name for name in theirs if name in ours and ours[name] != theirs[name])
        missing = sorted(set(theirs) ^ set(ours))
        same = len(theirs) - len(differ) - len(missing)
        tokens = sum(len(t) for t in theirs.values())
        print(f"{mode}: {same} of {len(theirs)} files identical ({tokens} tokens, "
              f"{len({t for seq in theirs.values() for t in seq})} distinct; music21 took {music21_seconds:.0f} s)")
        for name in differ:
            index, a, b = first_difference(ours[name], theirs[name])
            print(f"  {name}: first difference at token {index}: fugue {a}, music21 {b}")
        for name in missing:
            print(f"  {name}: only one side has it (fugue rejected: {rejected.get(name)})")
        failed |= bool(differ or missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
