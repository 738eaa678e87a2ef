// A few bars typed as note names, as the notes of a given part: `G4 A4 B4:2 r D5`.
// Each name is a letter, an optional # or b, and an octave (C4 is middle C); `:n`
// makes it last n beats (1 when left out), and `r` is a rest.

const LETTERS = { c: 0, d: 2, e: 4, f: 5, g: 7, a: 9, b: 11 };

export function parseMelody(text) {
  const notes = [];
  let beat = 0;
  for (const word of text.trim().split(/\s+/)) {
    const match = /^(?:([a-g])([#b]?)(-?\d)|(r))(?::(\d+(?:\.\d+)?))?$/i.exec(word);
    if (!match) throw new Error(`“${word}” is not a note name like C4, F#3, Bb4:2 or r (a rest)`);
    const beats = match[5] === undefined ? 1 : Number(match[5]);
    if (!(beats > 0 && beats <= 64)) throw new Error(`“${word}”: a note lasts above 0 and at most 64 beats`);
    if (!match[4]) {
      const accidental = { "#": 1, b: -1, "": 0 }[match[2].toLowerCase()];
      const pitch = 12 * (Number(match[3]) + 1) + LETTERS[match[1].toLowerCase()] + accidental;
      if (pitch < 0 || pitch > 127) throw new Error(`“${word}” is outside MIDI's pitches`);
      notes.push({ pitch, start_beat: beat, duration_beats: beats });
    }
    beat += beats;
  }
  if (notes.length === 0) throw new Error("The melody needs at least one note.");
  return notes;
}
