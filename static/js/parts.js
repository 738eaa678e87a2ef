// The parts of the piece under the roll: a colour and name each, an instrument
// picker, and mute and solo for playback. A changed instrument also goes into the
// next request's `parts`, so the next piece is written for it. While a real-time
// stream plays, each row steers its part: a new instrument, range (lowest and
// highest pitch) or polyphony is sent for that part alone (`steer`), and a refusal
// shows at the end of its row.

import { partColour } from "./roll.js";

// General MIDI programs the picker offers (any other a part has is added).
const INSTRUMENTS = [
  [0, "Piano"], [6, "Harpsichord"], [19, "Church organ"], [24, "Nylon guitar"], [32, "Acoustic bass"],
  [40, "Violin"], [41, "Viola"], [42, "Cello"], [43, "Contrabass"], [48, "Strings"], [52, "Choir aahs"],
  [53, "Voice oohs"], [56, "Trumpet"], [57, "Trombone"], [58, "Tuba"], [60, "French horn"], [68, "Oboe"],
  [70, "Bassoon"], [71, "Clarinet"], [73, "Flute"],
];

export class PartControls {
  constructor(list) {
    this.list = list;
    // part index → { name, program, chosen (program picked here, or null), muted, solo }
    this.parts = new Map();
    this.given = null;
    // Instruments picked for earlier pieces, by part name.
    this.remembered = new Map();
    this.shown = "";
    // Sends a part's settings to the stream playing: (`{name, ...}`, its row's error line).
    this.steer = () => {};
  }

  // A stream's `start` listed the parts it plays, in order (a note's part index
  // is its place there).
  declare(parts) {
    parts.forEach((part, index) => this.add(index, part.name, part.program));
    this.showChanges();
  }

  // Notes arrived: add the parts not seen yet (keeping what was chosen for the others).
  update(notes) {
    for (const note of notes) {
      if (note.part) this.add(note.part.index, note.part.name, note.program);
    }
    this.showChanges();
  }

  // A part not listed yet, with the instrument last picked for a part of its name.
  add(index, name, program) {
    if (this.parts.has(index)) return;
    const label = name ?? `Part ${index + 1}`;
    this.parts.set(index, { name: label, program, chosen: this.remembered.get(label) ?? null, muted: false, solo: false });
  }

  // Draws the rows again when the parts, or which one is given, changed.
  showChanges() {
    const key = [...this.parts.keys()].sort().join(",") + `|${this.given}`;
    if (key !== this.shown) this.render();
    this.shown = key;
  }

  // Whether a real-time stream plays, which the rows' range and polyphony steer.
  setLive(live) {
    this.list.classList.toggle("live", live);
  }

  // A new piece: forget its parts but keep the instruments chosen, by part name.
  reset(given) {
    for (const part of this.parts.values()) {
      if (part.chosen !== null) this.remembered.set(part.name, part.chosen);
    }
    this.parts.clear();
    this.given = given ? given.toLowerCase() : null;
    this.update([]);
  }

  isGiven(part) {
    return this.given !== null && (part.name ?? "").toLowerCase() === this.given;
  }

  // The notes as they should sound: muted parts left out (or only the soloed
  // ones kept), each part on its chosen instrument.
  audible(notes) {
    const soloing = [...this.parts.values()].some((p) => p.solo);
    return notes
      .filter((note) => {
        const part = note.part && this.parts.get(note.part.index);
        if (!part) return !soloing;
        return soloing ? part.solo : !part.muted;
      })
      .map((note) => {
        const part = note.part && this.parts.get(note.part.index);
        return part?.chosen == null ? note : { ...note, program: part.chosen };
      });
  }

  // `parts` for the next request, when an instrument was picked: every part of
  // this piece, by name, with its instrument.
  request() {
    const picked = [...this.parts.values()].some((p) => p.chosen !== null);
    if (!picked) return undefined;
    return [...this.parts.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, part]) => ({ name: part.name, program: part.chosen ?? part.program }));
  }

  render() {
    const entries = [...this.parts.entries()].sort((a, b) => a[0] - b[0]);
    this.list.replaceChildren(...entries.map(([index, part]) => this.item(index, part)));
    this.list.hidden = entries.length === 0;
  }

  item(index, part) {
    const item = document.createElement("li");
    item.dataset.part = String(index);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = partColour(index);
    const name = document.createElement("span");
    name.className = "part-name";
    name.textContent = part.name;
    item.append(swatch, name);
    if (this.isGiven(part)) {
      const given = document.createElement("span");
      given.className = "given";
      given.textContent = " (given)";
      item.append(given);
    }
    const picker = document.createElement("select");
    picker.setAttribute("aria-label", `Instrument of the ${part.name}`);
    const current = part.chosen ?? part.program;
    const known = INSTRUMENTS.some(([program]) => program === current);
    for (const [program, label] of known ? INSTRUMENTS : [[current, `Program ${current}`], ...INSTRUMENTS]) {
      picker.append(new Option(label, String(program), false, program === current));
    }
    const error = document.createElement("span");
    error.className = "error";
    error.setAttribute("aria-live", "polite");
    const steer = (settings) => this.steer({ name: part.name, ...settings }, error);
    picker.addEventListener("change", () => {
      part.chosen = Number(picker.value);
      steer({ program: part.chosen });
    });
    item.append(picker, this.toggle(part, "muted", "Mute"), this.toggle(part, "solo", "Solo"));
    item.append(liveFields(part, steer), error);
    return item;
  }

  toggle(part, flag, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "toggle";
    button.textContent = label;
    button.setAttribute("aria-label", `${label} the ${part.name}`);
    button.setAttribute("aria-pressed", String(part[flag]));
    button.addEventListener("click", () => {
      part[flag] = !part[flag];
      button.setAttribute("aria-pressed", String(part[flag]));
    });
    return button;
  }
}

// A part's range and polyphony, shown while a real-time stream plays: a change
// sends the range (a blank end is the keyboard's end) or the polyphony to `steer`.
function liveFields(part, steer) {
  const low = numberInput(`Lowest pitch of the ${part.name}`, 0, 127, "low");
  const high = numberInput(`Highest pitch of the ${part.name}`, 0, 127, "high");
  const voices = numberInput(`Most notes at once of the ${part.name}`, 1, 16, "any");
  const range = () => steer({ pitch_range: [valueOr(low, 0), valueOr(high, 127)] });
  low.addEventListener("change", range);
  high.addEventListener("change", range);
  voices.addEventListener("change", () => {
    if (voices.value !== "") steer({ max_polyphony: Number(voices.value) });
  });
  const fields = document.createElement("span");
  fields.className = "part-live";
  fields.append(labelled("Range", low, "–", high), labelled("Voices", voices));
  return fields;
}

function numberInput(name, min, max, placeholder) {
  const input = document.createElement("input");
  Object.assign(input, { type: "number", min, max, placeholder, inputMode: "numeric" });
  input.setAttribute("aria-label", name);
  return input;
}

const valueOr = (input, blank) => (input.value === "" ? blank : Number(input.value));

function labelled(text, ...contents) {
  const label = document.createElement("label");
  label.append(text, ...contents);
  return label;
}
