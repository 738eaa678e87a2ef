// Listening to a real-time stream: the server sends each note when it is due, so
// each is played as it arrives (or at its moment, if it came early), and the playhead keeps to the server's clock (its
// start is the `start` message, moved earlier by any note that arrives sooner
// after its moment than that says). Notes that arrive before the synthesizer is
// ready (its SoundFont loads on first use) are shown but not played.

const TICK_MS = 30;
const now = () => performance.now() / 1000;

export class LivePlayback {
  // `audible(notes)` gives the notes as they should sound (parts.js: mute, solo, instruments).
  constructor(synth, roll, audible) {
    this.synth = synth;
    this.audible = audible;
    this.origin = now();
    this.ready = false;
    synth.ensure().then(() => (this.ready = true));
    this.timer = window.setInterval(() => roll.setPlayhead(now() - this.origin), TICK_MS);
  }

  hear(notes) {
    const arrived = now();
    for (const note of notes) this.origin = Math.min(this.origin, arrived - note.start_seconds);
    if (!this.ready) return;
    const position = arrived - this.origin;
    const soon = this.synth.context.currentTime + 0.02;
    for (const note of this.audible(notes)) {
      this.synth.voice(note, soon + Math.max(0, note.start_seconds - position), 1);
    }
  }

  stop() {
    window.clearInterval(this.timer);
  }
}
