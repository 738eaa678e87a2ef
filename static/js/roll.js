// A piano roll on a canvas: time across, pitch up, velocity as shade, a colour
// per part (the legend is parts.js), the given part of a harmonization outlined,
// and a playhead. Notes can be added while they stream in.

// Distinct hues that read on light and dark backgrounds; parts beyond them repeat.
const PART_COLOURS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#0b7285", "#e67700", "#5f3dc4"];

export function partColour(index) {
  return PART_COLOURS[index % PART_COLOURS.length];
}

export class PianoRoll {
  constructor(canvas) {
    this.canvas = canvas;
    this.notes = [];
    // Says whether a note's part is the given one, to outline it.
    this.isGiven = () => false;
    this.playhead = null;
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(notes) {
    this.notes = [...notes];
    this.playhead = null;
    this.draw();
  }

  add(notes) {
    this.notes.push(...notes);
    this.draw();
  }

  setPlayhead(seconds) {
    this.playhead = seconds;
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.dataset.notes = String(this.notes.length);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    if (this.notes.length === 0) {
      g.fillStyle = dark ? "#9aa3b5" : "#5b6472";
      g.font = "14px system-ui, sans-serif";
      g.fillText("Press Generate to compose.", 16, height / 2);
      return;
    }
    const pitches = this.notes.map((n) => n.pitch);
    const low = Math.min(...pitches) - 2;
    const high = Math.max(...pitches) + 2;
    const end = Math.max(8, ...this.notes.map((n) => n.start_seconds + n.duration_seconds));
    const x = (seconds) => (seconds / end) * width;
    const row = height / (high - low + 1);
    const y = (pitch) => height - (pitch - low + 1) * row;
    // Octave lines on C.
    g.strokeStyle = dark ? "rgba(255,255,255,0.08)" : "rgba(0,0,0,0.08)";
    for (let pitch = Math.ceil(low / 12) * 12; pitch <= high; pitch += 12) {
      g.beginPath();
      g.moveTo(0, y(pitch) + row);
      g.lineTo(width, y(pitch) + row);
      g.stroke();
    }
    for (const note of this.notes) {
      const shade = 0.3 + 0.7 * (note.velocity / 127);
      if (note.part) {
        g.globalAlpha = shade;
        g.fillStyle = partColour(note.part.index);
      } else {
        g.globalAlpha = 1;
        g.fillStyle = dark ? `rgba(150, 180, 255, ${shade})` : `rgba(40, 70, 180, ${shade})`;
      }
      const box = [x(note.start_seconds), y(note.pitch), Math.max(2, x(note.duration_seconds) - 1), Math.max(2, row - 1)];
      g.fillRect(...box);
      if (note.part && this.isGiven(note.part)) {
        g.globalAlpha = 1;
        g.strokeStyle = dark ? "#ffffff" : "#111111";
        g.lineWidth = 1.5;
        g.strokeRect(...box);
      }
    }
    g.globalAlpha = 1;
    if (this.playhead !== null) {
      g.strokeStyle = "#e0452b";
      g.lineWidth = 2;
      g.beginPath();
      g.moveTo(x(this.playhead), 0);
      g.lineTo(x(this.playhead), height);
      g.stroke();
    }
  }
}
