// A small polyphonic piano-like synthesiser on Web Audio: two detuned partials
// through a velocity-dependent low-pass filter, with a struck envelope (fast
// attack, decay towards a low sustain, short release). Notes are scheduled a
// little ahead of time, so long pieces cost no more than short ones.

const LOOKAHEAD = 0.4;
const TICK_MS = 50;

export class Synth {
  constructor() {
    this.context = null;
    this.timer = null;
  }

  ensure() {
    if (!this.context) {
      this.context = new AudioContext();
      this.master = this.context.createDynamicsCompressor();
      const volume = this.context.createGain();
      volume.gain.value = 0.5;
      this.master.connect(volume).connect(this.context.destination);
    }
    return this.context.resume();
  }

  voice(note, at, rate) {
    const ctx = this.context;
    const frequency = 440 * 2 ** ((note.pitch - 69) / 12);
    const length = Math.max(0.05, note.duration_seconds / rate);
    const loudness = 0.05 + 0.25 * (note.velocity / 127);
    const filter = ctx.createBiquadFilter();
    filter.type = "lowpass";
    filter.frequency.value = 800 + 4000 * (note.velocity / 127);
    const envelope = ctx.createGain();
    envelope.gain.setValueAtTime(0, at);
    envelope.gain.linearRampToValueAtTime(loudness, at + 0.005);
    envelope.gain.setTargetAtTime(loudness * 0.3, at + 0.005, 0.4);
    envelope.gain.setTargetAtTime(0, at + length, 0.08);
    filter.connect(envelope).connect(this.master);
    for (const [type, multiple, level] of [["triangle", 1, 1], ["sine", 2.001, 0.35]]) {
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.type = type;
      oscillator.frequency.value = frequency * multiple;
      gain.gain.value = level;
      oscillator.connect(gain).connect(filter);
      oscillator.start(at);
      oscillator.stop(at + length + 0.6);
    }
  }

  // Plays `notes` at `rate()` times their speed; `onPosition(seconds)` follows the
  // playhead in the piece's own time. Loops while `loop()` says so.
  async play(notes, { rate, loop, onPosition, onEnd }) {
    await this.ensure();
    this.stop();
    const sorted = [...notes].sort((a, b) => a.start_seconds - b.start_seconds);
    const end = Math.max(0, ...sorted.map((n) => n.start_seconds + n.duration_seconds));
    let speed = rate();
    let origin = this.context.currentTime + 0.1;
    let next = 0;
    const tick = () => {
      const now = this.context.currentTime;
      const position = (now - origin) * speed;
      while (next < sorted.length && (sorted[next].start_seconds - position) / speed < LOOKAHEAD) {
        const note = sorted[next];
        this.voice(note, origin + note.start_seconds / speed, speed);
        next += 1;
      }
      onPosition(Math.max(0, position));
      if (position >= end) {
        if (loop() && end > 0) {
          speed = rate();
          origin = now + 0.05;
          next = 0;
        } else {
          this.stop();
          onEnd();
        }
      }
    };
    this.timer = window.setInterval(tick, TICK_MS);
    tick();
  }

  stop() {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
    if (this.master) {
      // Silence what is sounding: a fresh output chain, the old one cut.
      this.master.disconnect();
      const volume = this.context.createGain();
      volume.gain.value = 0.5;
      this.master = this.context.createDynamicsCompressor();
      this.master.connect(volume).connect(this.context.destination);
    }
  }
}
