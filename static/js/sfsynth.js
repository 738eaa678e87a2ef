// The SoundFont synthesizer: spessasynth (Apache-2.0, vendored in
// static/vendor/spessasynth) in an AudioWorklet, playing the server's font
// (GET /v1/soundfont), so that the page sounds like the audio download. Each part
// plays on a channel of its own with its program. It schedules notes as synth.js
// does (its `play` is inherited); when the font or the worklet cannot be had,
// synth.js's own voices play instead.

import { api } from "./api.js";
import { channelOf } from "./channels.js";
import { Synth } from "./synth.js";

const PROCESSOR = "/vendor/spessasynth/spessasynth_processor.min.js";

export class SoundFontSynth extends Synth {
  constructor() {
    super();
    this.font = null; // Promise<boolean>: whether the SoundFont synth is ready
    this.programs = new Map();
    this.kind = "basic";
    this.midiOut = null; // a MidiOut, given by the page: every note is sent there too
    // The page's one player, for whoever debugs (and the browser test) to tap.
    globalThis.fugueSynth = this;
  }

  ensure() {
    const resumed = super.ensure();
    if (!this.font) this.font = this.load().catch(() => false);
    return Promise.all([resumed, this.font]);
  }

  async load() {
    const [{ WorkletSynthesizer }, font] = await Promise.all([
      import("spessasynth_lib"),
      api("/v1/soundfont", { as: "blob" }).then((blob) => blob.arrayBuffer()),
    ]);
    await this.context.audioWorklet.addModule(PROCESSOR);
    this.sf = new WorkletSynthesizer(this.context);
    this.sf.connect(this.context.destination);
    // A tap on the output: the browser test reads it to hear that notes sound.
    this.analyser = this.context.createAnalyser();
    this.sf.connect(this.analyser);
    await this.sf.soundBankManager.addSoundBank(font, "main");
    await this.sf.isReady;
    this.kind = "soundfont";
    document.documentElement.dataset.synth = "soundfont";
    return true;
  }

  voice(note, at, rate) {
    if (this.midiOut) {
      const startMs = performance.now() + Math.max(0, at - this.context.currentTime) * 1000;
      this.midiOut.send(note, startMs, Math.max(20, (note.duration_seconds / rate) * 1000));
    }
    if (this.kind !== "soundfont") return super.voice(note, at, rate);
    const channel = channelOf(note);
    const time = Math.max(at, this.context.currentTime);
    if (this.programs.get(channel) !== note.program) {
      this.sf.programChange(channel, note.program, { time });
      this.programs.set(channel, note.program);
    }
    const length = Math.max(0.02, note.duration_seconds / rate);
    this.sf.noteOn(channel, note.pitch, note.velocity, { time });
    this.sf.noteOff(channel, note.pitch, { time: time + length });
  }

  stop() {
    super.stop();
    if (this.midiOut) this.midiOut.silence();
    if (this.sf) {
      this.sf.stopAll(true);
      this.programs.clear();
    }
  }
}
