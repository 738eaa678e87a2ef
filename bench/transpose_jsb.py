#!/usr/bin/env python3
"""Writes a JSB chorales piano-roll JSON whose training split holds every training
chorale in all twelve keys (transposed by -5 to +6 semitones, the original
included), with the valid and test splits left exactly as they are: the corpus
about 12 times JSB's size that models/README.md measures the recipes on.

  transpose_jsb.py SOURCE_JSON OUT_JSON

For example
  .venv/bin/python3 bench/transpose_jsb.py \
      ../shared/data/jsb-chorales/jsb-chorales-quarter.json /work/table/jsb-quarter-12keys.json

SOURCE_JSON is one of ../shared/data/jsb-chorales/jsb-chorales-*.json
({"train","valid","test"} -> sequences -> frames -> sounding MIDI pitches).
The training chorales come out grouped by shift (-5 first), each group in the
source's order; the trainer shuffles them anyway. Only the standard library is used.
"""
import json
import sys

SHIFTS = range(-5, 7)  # -5 .. +6 semitones: each of the 12 keys once
LOWEST, HIGHEST = 21, 108  # the 88 keys a piano roll holds


def transposed(sequence, shift):
    return [[pitch + shift for pitch in frame] for frame in sequence]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, target = sys.argv[1], sys.argv[2]
    with open(source) as file:
        splits = json.load(file)
    train = [transposed(sequence, shift) for shift in SHIFTS for sequence in splits["train"]]
    pitches = [pitch for sequence in train for frame in sequence for pitch in frame]
    if pitches and not LOWEST <= min(pitches) <= max(pitches) <= HIGHEST:
        sys.exit(f"a transposed pitch leaves the keyboard: {min(pitches)}..{max(pitches)}")
    out = {"train": train, "valid": splits["valid"], "test": splits["test"]}
    with open(target, "w") as file:
        json.dump(out, file, separators=(",", ":"))

    def frames(sequences):
        return sum(len(sequence) for sequence in sequences)

    print(
        f"{target}: train {len(train)} sequences, {frames(train)} frames "
        f"({len(SHIFTS)} x {frames(splits['train'])}, pitches {min(pitches)}..{max(pitches)}); "
        f"valid {len(splits['valid'])} / {frames(splits['valid'])} and "
        f"test {len(splits['test'])} / {frames(splits['test'])} unchanged"
    )


if __name__ == "__main__":
    main()
