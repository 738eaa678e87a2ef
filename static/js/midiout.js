// MIDI out: the notes the page plays, sent as they play to a Web MIDI output the
// browser offers (a hardware synth, or a DAW through a virtual port), one channel
// per part (channelOf: parts in order, skipping channel 10), with each part's
// program change before its first note.

import { channelOf } from "./channels.js";

export class MidiOut {
  constructor(select) {
    this.select = select;
    this.access = null;
    this.programs = new Map();
  }

  async init() {
    if (!navigator.requestMIDIAccess) {
      this.unavailable("Web MIDI is not available in this browser");
      return;
    }
    try {
      this.access = await navigator.requestMIDIAccess();
    } catch (error) {
      this.unavailable(`MIDI access refused (${error.message})`);
      return;
    }
    this.access.onstatechange = () => this.list();
    this.list();
  }

  unavailable(reason) {
    this.select.disabled = true;
    this.select.title = reason;
  }

  list() {
    const chosen = this.select.value;
    const off = new Option("Off", "");
    const outputs = [...this.access.outputs.values()].map((output) => new Option(output.name, output.id));
    this.select.replaceChildren(off, ...outputs);
    this.select.value = outputs.some((option) => option.value === chosen) ? chosen : "";
    this.select.disabled = outputs.length === 0;
  }

  get output() {
    return this.access && this.select.value ? this.access.outputs.get(this.select.value) ?? null : null;
  }

  // Sends `note` to start at `startMs` and end `lengthMs` later (performance.now() times).
  send(note, startMs, lengthMs) {
    const output = this.output;
    if (!output) return;
    const channel = channelOf(note);
    if (this.programs.get(channel) !== note.program) {
      output.send([0xc0 | channel, note.program], startMs);
      this.programs.set(channel, note.program);
    }
    output.send([0x90 | channel, note.pitch, note.velocity], startMs);
    output.send([0x80 | channel, note.pitch, 0], startMs + lengthMs);
  }

  // All notes off on every channel, at once (and forget the programs sent).
  silence() {
    const output = this.output;
    this.programs.clear();
    if (!output) return;
    if (output.clear) output.clear();
    for (let channel = 0; channel < 16; channel += 1) output.send([0xb0 | channel, 123, 0]);
  }
}
