// Where a piece's beats and bars fall in time. Every note carries its onset and
// end in beats and in seconds; between two such moments the tempo is taken as
// even, and before the first and after the last the nearest tempo holds (the
// request's, or 120 bpm, when there are no notes yet). Bars follow the piece's
// meters, 4/4 where it states none.

const DEFAULT_METER = { beat: 0, numerator: 4, denominator: 4 };

export class Timeline {
  constructor(notes, meters = [], bpm = 120) {
    const moments = new Map();
    for (const note of notes) {
      moments.set(note.start_beat, note.start_seconds);
      moments.set(note.start_beat + note.duration_beats, note.start_seconds + note.duration_seconds);
    }
    // [beat, seconds] in order of both (a moment that would run time backwards is left out).
    this.knots = [];
    for (const [beat, seconds] of [...moments].sort((a, b) => a[0] - b[0])) {
      const last = this.knots.at(-1);
      if (!last || seconds > last[1]) this.knots.push([beat, seconds]);
    }
    if (this.knots.length === 0) this.knots.push([0, 0]);
    this.secondsPerBeat = 60 / bpm;
    const usable = meters.filter((m) => m.numerator > 0 && m.denominator > 0).sort((a, b) => a.beat - b.beat);
    this.meters = usable[0]?.beat === 0 ? usable : [DEFAULT_METER, ...usable];
  }

  seconds(beat) {
    return this.along(beat, 0, 1);
  }

  beat(seconds) {
    return this.along(seconds, 1, 0);
  }

  // Maps a value on one axis of the knots (`from`: 0 beats, 1 seconds) to the other.
  along(value, from, to) {
    const { knots } = this;
    if (knots.length === 1) {
      const scale = to === 1 ? this.secondsPerBeat : 1 / this.secondsPerBeat;
      return knots[0][to] + (value - knots[0][from]) * scale;
    }
    // The first knot at or past `value` (the last when none is), never the first.
    let low = 1;
    let high = knots.length - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (knots[middle][from] < value) low = middle + 1;
      else high = middle;
    }
    const [a, b] = [knots[low - 1], knots[low]];
    return a[to] + ((value - a[from]) * (b[to] - a[to])) / (b[from] - a[from]);
  }

  // The bar and beat lines from `from` to `to` seconds, in order: `{ seconds,
  // beat, bar }`, where `bar` is the bar's number (from 1) on a bar line and 0 on
  // a beat line. A beat is the meter's note value (a quarter in 4/4, an eighth in 6/8).
  lines(from, to) {
    const first = Math.max(0, this.beat(from));
    const last = this.beat(to);
    const lines = [];
    let barsBefore = 0;
    this.meters.forEach((meter, index) => {
      const unit = 4 / meter.denominator;
      const bar = meter.numerator * unit;
      const until = this.meters[index + 1]?.beat ?? Infinity;
      for (let k = Math.max(0, Math.floor((first - meter.beat) / unit)); ; k += 1) {
        const beat = meter.beat + k * unit;
        if (beat >= until || beat > last) break;
        if (beat < first) continue;
        const onBar = k % meter.numerator === 0;
        lines.push({ seconds: this.seconds(beat), beat, bar: onBar ? barsBefore + k / meter.numerator + 1 : 0 });
      }
      if (until !== Infinity) barsBefore += Math.ceil((until - meter.beat) / bar);
    });
    return lines;
  }
}
