#!/usr/bin/env python3
"""The tutorials' ingest, for side-by-side speed comparison with `fugue bench ingest`.

For each MIDI file, the classical-piano tutorial's parse: music21's converter.parse,
partitionByInstrument, then every note and chord of the first part into a token
(the code itself is tests/tutorials/tutorial_tokens.py, which make test checks
fugue against). Prints one JSON line: {"files", "bytes", "seconds",
"files_per_second", "mb_per_second"}.

  music21_ingest.py FILE...
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "tutorials"))
from tutorial_tokens import classical_piano  # noqa: E402


def main(paths):
    size = sum(os.path.getsize(path) for path in paths)
    started = time.perf_counter()
    for path in paths:
        classical_piano(path)
    seconds = time.perf_counter() - started
    print(json.dumps({"files": len(paths), "bytes": size, "seconds": seconds,
                      "files_per_second": len(paths) / seconds,
                      "mb_per_second": size / seconds / 1e6}))


if __name__ == "__main__":
    main(sys.argv[1:])
