//! The notes analysis reads, from a [`Score`] or from the generator.

use crate::midi::{Score, TimeSignature};

/// Onsets are compared on a grid of this many steps per beat: the `events`
/// representation's grid (32nd notes and 16th-note triplets fall on it).
pub const GRID_PER_BEAT: f64 = 24.0;

/// Beats to grid steps (negative times count as 0).
pub fn grid_steps(beats: f64) -> u64 {
    (beats.max(0.0) * GRID_PER_BEAT).round() as u64
}

/// One note, in beats (quarter notes) from the start of the piece.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisNote {
    /// MIDI pitch.
    pub pitch: u8,
    /// General MIDI program of its part: what a copy check can exclude a part by.
    pub program: u8,
    pub start_beat: f64,
    pub duration_beats: f64,
}

/// A training note and the bar it sits in, to say where a copy comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingNote {
    pub note: AnalysisNote,
    /// 1-based; bar 1 starts at beat 0.
    pub bar: u32,
}

/// A training piece: its name (a file name, say) and its notes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPiece {
    pub name: String,
    pub notes: Vec<TrainingNote>,
}

impl TrainingPiece {
    /// The pitched notes of `score`, each with its bar.
    pub fn from_score(name: impl Into<String>, score: &Score) -> TrainingPiece {
        let bars = BarLines::new(score);
        let ticks_per_beat = f64::from(score.ticks_per_beat.max(1));
        let notes = notes_of(score)
            .into_iter()
            .map(|note| {
                let tick = (note.start_beat * ticks_per_beat).round() as u64;
                TrainingNote { note, bar: bars.bar_at(tick) }
            })
            .collect();
        TrainingPiece { name: name.into(), notes }
    }
}

/// Every note of the pitched (non-drum) parts of `score`, by onset then pitch.
pub fn notes_of(score: &Score) -> Vec<AnalysisNote> {
    let mut notes: Vec<AnalysisNote> = score
        .parts
        .iter()
        .filter(|part| !part.is_drum)
        .flat_map(|part| {
            part.notes.iter().map(|note| AnalysisNote {
                pitch: note.pitch,
                program: part.program,
                start_beat: score.beats(note.start),
                duration_beats: score.beats(note.duration),
            })
        })
        .collect();
    notes.sort_by(|a, b| a.start_beat.total_cmp(&b.start_beat).then(a.pitch.cmp(&b.pitch)));
    notes
}

/// Where a score's bars begin. As in the `events` representation, a meter change
/// takes effect at the first bar line at or after it, so bars are always whole.
struct BarLines {
    /// (tick where bars of this length begin, number of the first of them, ticks per bar)
    segments: Vec<(u64, u32, u64)>,
}

impl BarLines {
    fn new(score: &Score) -> BarLines {
        let per_beat = u64::from(score.ticks_per_beat.max(1));
        let bar_ticks = |meter: &TimeSignature| {
            let whole = u64::from(meter.numerator) * per_beat * 4;
            match u64::from(meter.denominator) {
                0 => 4 * per_beat,
                denominator => (whole / denominator).max(1),
            }
        };
        let mut segments = vec![(0, 1, 4 * per_beat)];
        for meter in &score.time_signatures {
            let &(start, first, length) = segments.last().expect("segments start non-empty");
            let bars_before = (meter.tick.saturating_sub(start)).div_ceil(length);
            let at = start + bars_before * length;
            if at == start {
                segments.pop();
            }
            let first = first + bars_before as u32;
            segments.push((at, first, bar_ticks(meter)));
        }
        BarLines { segments }
    }

    fn bar_at(&self, tick: u64) -> u32 {
        let index = self.segments.partition_point(|&(start, ..)| start <= tick).saturating_sub(1);
        let (start, first, length) = self.segments[index];
        first + ((tick - start) / length) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{Note, Part};

    #[test]
    fn bars_follow_meter_changes_from_the_next_bar_line() {
        // 4/4 bars of 4 beats, then 3/4 asked for mid-bar (beat 6): it starts at beat 8.
        let note = |beat: u64| Note { pitch: 60, velocity: 80, start: beat * 10, duration: 10 };
        let mut score = Score::of_parts(10, vec![Part::new(0, 0, [0, 4, 7, 8, 11, 14].map(note).to_vec())]);
        score.time_signatures = vec![
            TimeSignature { tick: 0, numerator: 4, denominator: 4 },
            TimeSignature { tick: 60, numerator: 3, denominator: 4 },
        ];
        let bars: Vec<u32> =
            TrainingPiece::from_score("x", &score).notes.iter().map(|note| note.bar).collect();
        assert_eq!(bars, [1, 2, 2, 3, 4, 5]);
    }
}
