#!/usr/bin/env python3
"""Reads MIDI files with mido, an independent reader, and prints what they hold as
JSON: resolution, tempos, meters, keys and every note with its channel and program.

  midi_summary.py FILE...   ->  one JSON object per line

Where MIDI leaves a choice, it follows the conventions fugue documents in
src/midi/read.rs: a program change applies to its channel from its tick on, in
any track; a note-on of a sounding pitch ends it (a later orphan note-off is
ignored); notes still sounding at a track's end close there; empty notes drop;
of tempo, meter or key events at one tick, the last (in track order) wins.
"""
import bisect
import json
import sys

import mido


def summarise(path):
    midi = mido.MidiFile(path)
    summary = {"type": midi.type, "ticks_per_beat": midi.ticks_per_beat,
               "tempos": [], "time_signatures": [], "key_signatures": [], "notes": [],
               "track_names": [next((m.name for m in track if m.type == "track_name"), None)
                               for track in midi.tracks]}
    programs = {}
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "program_change":
                programs.setdefault(message.channel, []).append((tick, message.program))
    for changes in programs.values():
        changes.sort(key=lambda change: change[0])

    def program_at(channel, tick):
        changes = programs.get(channel, [])
        index = bisect.bisect_right([at for at, _ in changes], tick)
        return changes[index - 1][1] if index else 0

    def close(channel, pitch, start, velocity, end):
        if end > start:
            summary["notes"].append([channel, program_at(channel, start), pitch, velocity, start, end])

    for track in midi.tracks:
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                summary["tempos"].append([tick, message.tempo])
            elif message.type == "time_signature":
                summary["time_signatures"].append([tick, message.numerator, message.denominator])
            elif message.type == "key_signature":
                summary["key_signatures"].append([tick, message.key])
            elif message.type in ("note_on", "note_off"):
                key = (message.channel, message.note)
                if key in sounding:
                    close(*key, *sounding.pop(key), tick)
                if message.type == "note_on" and message.velocity > 0:
                    sounding[key] = (tick, message.velocity)
        for key, (start, velocity) in sounding.items():
            close(*key, start, velocity, tick)
    for name in ("tempos", "time_signatures", "key_signatures"):
        summary[name] = last_per_tick(summary[name])
    summary["notes"].sort()
    return summary


def last_per_tick(events):
    kept = {}
    for event in sorted(events, key=lambda event: event[0]):
        kept[event[0]] = event
    return list(kept.values())


for path in sys.argv[1:]:
    print(json.dumps(summarise(path)))
