#!/usr/bin/env python3
"""Reference note/chord tokens from two public music21 LSTM tutorials.

Pinned: music21==10.5.1 (see scripts/test-requirements.txt). music21 >= 8 removed the
`.flat` property; `.flatten()` is the same operation, so `.flat` below reads `.flatten()`.

--mode classical-piano: Skuldur/Classical-Piano-Composer, lstm.py get_notes():
    midi = converter.parse(file)
    try: # file has instrument parts
        s2 = instrument.partitionByInstrument(midi)
        notes_to_parse = s2.parts[0].recurse()
    except: # file has notes in a flat structure
        notes_to_parse = midi.flat.notes
    for element in notes_to_parse:
        if isinstance(element, note.Note):
            notes.append(str(element.pitch))
        elif isinstance(element, chord.Chord):
            notes.append('.'.join(str(n) for n in element.normalOrder))

--mode play-bach: pabou38/play_bach, DEEP/music21/play_bach.py parse(), with the defaults
of DEEP/music21/config_bach.py (chordify = False, normal = False, concatenate = False):
    score=converter.parse(file)
    for element in score.flat:
        if isinstance(element,note.Note):
            p= str(element.pitch)
        elif isinstance(element,chord.Chord):
            for x in  element.pitches:
                p.append (x.nameWithOctave)
            p = ".".join(p)
            p=p.replace('is','')
            p=p.replace('s','')
        elif isinstance(element,note.Rest):
            p='R'

Faithful means faithful: for multi-track files such as the Bach chorales, parts[0] of
partitionByInstrument is usually the first track's name-only instrument and holds no notes,
so classical-piano gives [] for 406 of the 410 chorales (this is what the tutorial does).

Usage: tutorial_tokens.py --mode {play-bach,classical-piano} PATH [PATH ...]
(PATH = a MIDI file or a folder of *.mid/*.midi). Prints
{"mode": ..., "files": {"<file name>": [tokens...]}} as JSON on stdout.
"""
import argparse
import json
import sys
from pathlib import Path

from music21 import chord, converter, instrument, note


def classical_piano(file):
    midi = converter.parse(file)
    try:
        s2 = instrument.partitionByInstrument(midi)
        notes_to_parse = s2.parts[0].recurse()
    except Exception:  # the tutorial's bare `except:`
        notes_to_parse = midi.flatten().notes
    notes = []
    for element in notes_to_parse:
        if isinstance(element, note.Note):
            notes.append(str(element.pitch))
        elif isinstance(element, chord.Chord):
            notes.append('.'.join(str(n) for n in element.normalOrder))
    return notes


def play_bach(file):
    score = converter.parse(file)
    notes = []
    for element in score.flatten():
        if isinstance(element, note.Note):
            notes.append(str(element.pitch))
        elif isinstance(element, chord.Chord):
            p = '.'.join(x.nameWithOctave for x in element.pitches)
            notes.append(p.replace('is', '').replace('s', ''))
        elif isinstance(element, note.Rest):
            notes.append('R')
    return notes


MODES = {'classical-piano': classical_piano, 'play-bach': play_bach}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--mode', choices=MODES, required=True)
    ap.add_argument('paths', nargs='+', type=Path)
    args = ap.parse_args()
    files = []
    for p in args.paths:
        files += sorted(q for q in p.iterdir() if q.suffix.lower() in ('.mid', '.midi')) if p.is_dir() else [p]
    out = {'mode': args.mode, 'files': {f.name: MODES[args.mode](f) for f in files}}
    json.dump(out, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
