// The keyboard along the piano roll's pitch axis: a row per key, the black keys
// dark and short as on a piano, every C named with its octave (C4 is middle C),
// and every white key named where the rows are tall enough to read.

const NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
const BLACK = new Set([1, 3, 6, 8, 10]);
const INK = "#2b2f36";

function noteName(pitch) {
  return `${NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

export function isBlack(pitch) {
  return BLACK.has(pitch % 12);
}

// Draws keys `low` to `high` in the strip `width` wide, the row of `pitch` from
// `y(pitch)` down `row` pixels. Returns the names it wrote, each with its box.
export function drawKeyboard(g, { low, high, width, y, row }) {
  const names = [];
  const every = row >= 13;
  const size = Math.max(8, Math.min(11, Math.floor(row * 1.6)));
  g.font = `${size}px system-ui, sans-serif`;
  g.textBaseline = "middle";
  g.textAlign = "right";
  for (let pitch = low; pitch <= high; pitch += 1) {
    const top = y(pitch);
    g.fillStyle = "#fbfbfa";
    g.fillRect(0, top, width, row);
    if (isBlack(pitch)) {
      g.fillStyle = INK;
      g.fillRect(0, top, width * 0.55, row);
    }
    // The line between two white keys (B and C, E and F) and under every C.
    if (pitch % 12 === 0 || pitch % 12 === 5) {
      g.fillStyle = "#9aa0aa";
      g.fillRect(0, top + row - 1, width, 1);
    }
  }
  for (let pitch = low; pitch <= high; pitch += 1) {
    if (isBlack(pitch) || !(every || pitch % 12 === 0)) continue;
    const name = noteName(pitch);
    const middle = y(pitch) + row / 2;
    g.fillStyle = INK;
    g.fillText(name, width - 3, middle);
    const measured = g.measureText(name).width;
    names.push({ name, pitch, x: width - 3 - measured, y: middle - size / 2, width: measured, height: size });
  }
  g.fillStyle = "#9aa0aa";
  g.fillRect(width - 1, y(high), 1, y(low) + row - y(high));
  return names;
}
