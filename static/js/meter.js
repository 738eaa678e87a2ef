// The meters a standard MIDI file states: its time-signature events, as
// `{ beat, numerator, denominator }` with `beat` in quarter notes from the start,
// in order. A composition's JSON has no meter (the model may choose one), but its
// stored MIDI file does. Anything that is not a well-formed file gives none.

const CHANNEL_DATA = { 0x80: 2, 0x90: 2, 0xa0: 2, 0xb0: 2, 0xc0: 1, 0xd0: 1, 0xe0: 2 };

export function metersOf(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 14 || tag(0) !== "MThd") return [];
  const division = view.getUint16(12);
  if (division & 0x8000) return []; // SMPTE time has no beats
  const meters = [];
  let at = 8 + view.getUint32(4);
  while (at + 8 <= bytes.length) {
    const end = Math.min(bytes.length, at + 8 + view.getUint32(at + 4));
    if (tag(at) === "MTrk") meters.push(...trackMeters(bytes, at + 8, end, division));
    at = end;
  }
  meters.sort((a, b) => a.beat - b.beat);
  // Two at one moment: the later one stands.
  return meters.filter((meter, i) => meters[i + 1]?.beat !== meter.beat);
}

function trackMeters(bytes, start, end, division) {
  const meters = [];
  let at = start;
  let tick = 0;
  let running = 0;
  const number = () => {
    let value = 0;
    let byte;
    do {
      byte = bytes[at++];
      value = value * 128 + (byte & 0x7f);
    } while (byte & 0x80 && at < end);
    return value;
  };
  while (at < end) {
    tick += number();
    const status = bytes[at];
    if (status === 0xff) {
      const type = bytes[at + 1];
      at += 2;
      const length = number();
      if (type === 0x58 && length >= 2) {
        meters.push({ beat: tick / division, numerator: bytes[at], denominator: 2 ** bytes[at + 1] });
      }
      at += length;
    } else if (status === 0xf0 || status === 0xf7) {
      at += 1;
      at += number();
    } else {
      if (status & 0x80) {
        running = status;
        at += 1;
      }
      const data = CHANNEL_DATA[running & 0xf0];
      if (data === undefined) return meters; // data with no status before it: not MIDI
      at += data;
    }
  }
  return meters;
}
