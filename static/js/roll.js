// A piano roll on a canvas: a keyboard up the side (keys.js), time across with
// bar and beat lines and numbered bars along the top (timeline.js), a colour per
// part (the legend is parts.js), velocity as shade, the given part of a
// harmonization outlined, and a playhead. The piece scrolls sideways under the
// keyboard, zooms (the buttons, or Ctrl + wheel), and scrolls with the playhead
// while it plays. Notes can be added while they stream in.
//
// What it drew last is in `drawn` (the names on the keys, the bar and beat lines,
// the playhead, the ruler's height and the free row at the top), which the browser
// test checks against the canvas's pixels.

import { drawKeyboard, isBlack } from "./keys.js";
import { Timeline } from "./timeline.js";

// Distinct hues that read on light and dark backgrounds; parts beyond them repeat.
const PART_COLOURS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#0b7285", "#e67700", "#5f3dc4"];

export function partColour(index) {
  return PART_COLOURS[index % PART_COLOURS.length];
}

const KEYS = 48; // the keyboard's width
const RULER = 18; // the strip of bar numbers along the top
const PAD = 12; // room after the end of the piece
const READABLE = 24; // pixels per second: a longer piece scrolls rather than fits
const ZOOM_MAX = 600;
const HANDS_OFF_MS = 3000; // after a hand on the scrollbar, the playhead leaves the scrolling alone

export class PianoRoll {
  // `scroller` holds an element as wide as the piece, which holds the canvas.
  constructor(scroller, canvas) {
    this.scroller = scroller;
    this.extent = canvas.parentElement;
    this.canvas = canvas;
    this.notes = [];
    this.meters = [];
    // Says whether a note's part is the given one, to outline it.
    this.isGiven = () => false;
    this.playhead = null;
    this.zoom = null; // pixels per second; null fits the piece, down to READABLE
    this.handsOnUntil = 0;
    this.drawn = { keys: [], lines: [], playhead: null };
    this.retime();
    new ResizeObserver(() => this.draw()).observe(scroller);
    scroller.addEventListener("scroll", () => {
      if (scroller.scrollLeft !== this.drawn.left) this.draw();
    });
    const handsOn = () => (this.handsOnUntil = performance.now() + HANDS_OFF_MS);
    scroller.addEventListener("pointerdown", handsOn);
    scroller.addEventListener("keydown", handsOn);
    scroller.addEventListener("wheel", (event) => {
      if (!event.ctrlKey) {
        if (event.shiftKey || event.deltaX !== 0) handsOn();
        return;
      }
      event.preventDefault();
      this.zoomBy(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - scroller.getBoundingClientRect().left);
    }, { passive: false });
    // The page's one roll, for whoever debugs (and the browser test) to read.
    globalThis.fugueRoll = this;
  }

  // A new piece, shown from its start; `meters` as metersOf gives them (none: 4/4).
  set(notes, meters = []) {
    this.notes = [...notes];
    this.meters = meters;
    this.playhead = null;
    this.retime();
    this.layout();
    this.scroller.scrollLeft = 0;
    this.draw();
  }

  add(notes) {
    this.notes.push(...notes);
    this.retime();
    this.draw();
  }

  setMeters(meters) {
    this.meters = meters;
    this.retime();
    this.draw();
  }

  setPlayhead(seconds) {
    this.playhead = seconds;
    if (seconds !== null && performance.now() > this.handsOnUntil) this.follow(seconds);
    this.draw();
  }

  // Zooms by `factor` about the point `at` pixels from the roll's left edge.
  zoomBy(factor, at = (this.scroller.clientWidth + KEYS) / 2) {
    const before = this.scale();
    const seconds = (this.scroller.scrollLeft + at - KEYS) / before;
    this.zoom = Math.min(ZOOM_MAX, Math.max(this.fit(), before * factor));
    this.layout();
    this.scroller.scrollLeft = KEYS + seconds * this.zoom - at;
    this.draw();
  }

  // Back to the whole piece in view (a long one scrolls, at a readable size).
  zoomToFit() {
    this.zoom = null;
    this.draw();
  }

  retime() {
    this.timeline = new Timeline(this.notes, this.meters);
    this.end = Math.max(0, ...this.notes.map((n) => n.start_seconds + n.duration_seconds));
    const pitches = this.notes.length > 0 ? this.notes.map((n) => n.pitch) : [60];
    // Two octaves at least, with a free row above and below the notes.
    let low = Math.min(...pitches) - 2;
    let high = Math.max(...pitches) + 2;
    const short = 25 - (high - low + 1);
    if (short > 0) {
      low -= Math.floor(short / 2);
      high += Math.ceil(short / 2);
    }
    this.range = { low: Math.max(0, low), high: Math.min(127, high) };
  }

  seconds() {
    return Math.max(8, this.end, this.playhead ?? 0);
  }

  // Pixels per second that show the whole piece.
  fit() {
    return Math.max(1, this.scroller.clientWidth - KEYS - PAD) / this.seconds();
  }

  scale() {
    return this.zoom ?? Math.max(this.fit(), READABLE);
  }

  // Makes the scrolled element as wide as the piece, and the canvas as wide as the view.
  layout() {
    const view = this.scroller.clientWidth;
    const width = Math.max(view, Math.ceil(KEYS + this.seconds() * this.scale() + PAD));
    if (this.extent.style.width !== `${width}px`) this.extent.style.width = `${width}px`;
    if (this.canvas.style.width !== `${view}px`) this.canvas.style.width = `${view}px`;
  }

  // Turns the page when the playhead nears the right edge or is out of sight.
  follow(seconds) {
    this.layout();
    const view = this.scroller.clientWidth - KEYS;
    const x = seconds * this.scale() - this.scroller.scrollLeft;
    if (x < 0 || x > view * 0.85) this.scroller.scrollLeft = seconds * this.scale() - view * 0.1;
  }

  draw() {
    this.layout();
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = this.scroller.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.dataset.notes = String(this.notes.length);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = this.scroller.scrollLeft;
    this.drawn = { keys: [], lines: [], playhead: null, left };
    const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    if (this.notes.length === 0) {
      g.fillStyle = dark ? "#9aa3b5" : "#5b6472";
      g.font = "14px system-ui, sans-serif";
      g.fillText("Press Generate to compose.", 16, height / 2);
      return;
    }
    const scale = this.scale();
    const x = (seconds) => KEYS + seconds * scale - left;
    const { low, high } = this.range;
    const row = (height - RULER) / (high - low + 1);
    const y = (pitch) => RULER + (high - pitch) * row;
    Object.assign(this.drawn, { ruler: RULER, freeRow: { y: y(high), height: row } });
    const ink = dark ? "255,255,255" : "0,0,0";

    // The lanes of the black keys, shaded; a line under every C.
    for (let pitch = low; pitch <= high; pitch += 1) {
      g.fillStyle = `rgba(${ink},${isBlack(pitch) ? 0.06 : 0})`;
      g.fillRect(KEYS, y(pitch), width - KEYS, row);
      if (pitch % 12 === 0) {
        g.fillStyle = `rgba(${ink},0.14)`;
        g.fillRect(KEYS, y(pitch) + row - 1, width - KEYS, 1);
      }
    }
    this.drawGrid(g, { x, width, height, ink, from: left / scale, to: (left + width - KEYS) / scale });

    for (const note of this.notes) {
      const start = x(note.start_seconds);
      const length = note.duration_seconds * scale;
      if (start > width || start + length < KEYS) continue;
      const shade = 0.3 + 0.7 * (note.velocity / 127);
      if (note.part) {
        g.globalAlpha = shade;
        g.fillStyle = partColour(note.part.index);
      } else {
        g.globalAlpha = 1;
        g.fillStyle = dark ? `rgba(150, 180, 255, ${shade})` : `rgba(40, 70, 180, ${shade})`;
      }
      const box = [start, y(note.pitch), Math.max(2, length - 1), Math.max(2, row - 1)];
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
      const at = Math.round(x(this.playhead));
      if (at >= KEYS && at <= width) {
        g.fillStyle = "#e0452b";
        g.fillRect(at - 1, 0, 2, height);
        this.drawn.playhead = at;
      }
    }
    g.fillStyle = dark ? "#3a3f4b" : "#e4e7ee";
    g.fillRect(0, 0, KEYS, RULER);
    this.drawn.keys = drawKeyboard(g, { low, high, width: KEYS, y, row });
  }

  // Bar lines across the roll and the ruler, with the bar's number in the ruler;
  // beat lines fainter, under the ruler; each left out where they would crowd.
  drawGrid(g, { x, width, height, ink, from, to }) {
    g.fillStyle = `rgba(${ink},0.07)`;
    g.fillRect(KEYS, 0, width - KEYS, RULER);
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    g.textAlign = "left";
    let lastLine = -Infinity;
    let lastNumber = -Infinity;
    for (const line of this.timeline.lines(from, to)) {
      const at = Math.round(x(line.seconds));
      if (at < KEYS || at >= width || (!line.bar && at - lastLine < 6)) continue;
      lastLine = at;
      g.fillStyle = `rgba(${ink},${line.bar ? 0.42 : 0.13})`;
      if (line.bar) g.fillRect(at, 0, 1, height);
      else g.fillRect(at, RULER, 1, height - RULER);
      const label = line.bar ? String(line.bar) : "";
      const numbered = label !== "" && at > lastNumber && at + 3 + g.measureText(label).width < width;
      if (numbered) {
        g.fillStyle = `rgba(${ink},0.7)`;
        g.fillText(label, at + 3, RULER / 2);
        lastNumber = at + 3 + g.measureText(label).width + 4;
      }
      this.drawn.lines.push({ ...line, x: at, numbered });
    }
  }
}
