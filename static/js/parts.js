// The parts of the piece under the roll: a colour and name each, an instrument
// picker, and mute and solo for playback. A changed instrument also goes into the
// next request's `parts`, so the next piece is written for it.

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
  }

  // Notes arrived: add the parts not seen yet (keeping what was chosen for the others).
  update(notes) {
    for (const note of notes) {
      if (!note.part || this.parts.has(note.part.index)) continue;
      const name = note.part.name ?? `Part ${note.part.index + 1}`;
      this.parts.set(note.part.index, {
        name,
        program: note.program,
        chosen: this.remembered.get(name) ?? null,
        muted: false,
        solo: false,
      });
    }
    const key = [...this.parts.keys()].sort().join(",") + `|${this.given}`;
    if (key !== this.shown) this.render();
    this.shown = key;
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
    picker.addEventListener("change", () => {
      part.chosen = Number(picker.value);
    });
    item.append(picker, this.toggle(part, "muted", "Mute"), this.toggle(part, "solo", "Solo"));
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
