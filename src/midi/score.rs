//! The score: what fugue keeps of a piece of music.
//!
//! Times are integer ticks at the source's resolution, so reading, writing and
//! reading again is exact; beats and seconds are derived through [`TempoMap`].

use serde::{Deserialize, Serialize};

/// Microseconds per beat of MIDI's implied tempo when a file sets none (120 bpm).
pub const DEFAULT_MICROS_PER_BEAT: u32 = 500_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// Ticks per beat (quarter note) of the source.
    pub ticks_per_beat: u16,
    /// Tempo changes, sorted by tick, at most one per tick. None means 120 bpm.
    pub tempos: Vec<TempoChange>,
    /// Meter changes, sorted by tick, at most one per tick. None means 4/4.
    pub time_signatures: Vec<TimeSignature>,
    /// Key changes, sorted by tick, at most one per tick.
    pub key_signatures: Vec<KeySignature>,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TempoChange {
    pub tick: u64,
    pub micros_per_beat: u32,
}

impl TempoChange {
    pub fn bpm(&self) -> f64 {
        60_000_000.0 / f64::from(self.micros_per_beat)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSignature {
    pub tick: u64,
    pub numerator: u8,
    /// The note value of one beat: 2, 4, 8, 16, ... (a power of two).
    pub denominator: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySignature {
    pub tick: u64,
    /// Sharps when positive, flats when negative (-7..=7).
    pub sharps: i8,
    pub minor: bool,
}

/// One instrument's line: the notes of one channel and program in one track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The source track's name, when it has one.
    pub name: Option<String>,
    /// General MIDI program, 0..=127.
    pub program: u8,
    /// MIDI channel, 0..=15.
    pub channel: u8,
    /// Channel 10 (index 9): the notes are drum sounds, not pitches.
    pub is_drum: bool,
    /// Sorted by (start, pitch); per pitch, notes never overlap.
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub pitch: u8,
    /// 1..=127.
    pub velocity: u8,
    pub start: u64,
    /// At least one tick.
    pub duration: u64,
}

impl Part {
    /// An unnamed, pitched part.
    pub fn new(channel: u8, program: u8, notes: Vec<Note>) -> Part {
        Part { name: None, program, channel, is_drum: false, notes }
    }
}

impl Note {
    pub fn end(&self) -> u64 {
        self.start + self.duration
    }
}

impl Score {
    /// A score of these parts with no tempo, meter or key events (120 bpm, 4/4).
    pub fn of_parts(ticks_per_beat: u16, parts: Vec<Part>) -> Score {
        Score {
            ticks_per_beat,
            tempos: Vec::new(),
            time_signatures: Vec::new(),
            key_signatures: Vec::new(),
            parts,
        }
    }

    pub fn tempo_map(&self) -> TempoMap {
        TempoMap::new(self.ticks_per_beat, &self.tempos)
    }

    /// Seconds from the start to `tick`. For one look-up; many go through [`TempoMap`].
    pub fn seconds_at(&self, tick: u64) -> f64 {
        seconds_at(self.ticks_per_beat, &self.tempos, tick)
    }

    pub fn note_count(&self) -> usize {
        self.parts.iter().map(|part| part.notes.len()).sum()
    }

    /// The tick at which the last note ends.
    pub fn end_tick(&self) -> u64 {
        self.parts.iter().flat_map(|part| &part.notes).map(Note::end).max().unwrap_or(0)
    }

    pub fn beats(&self, tick: u64) -> f64 {
        tick as f64 / f64::from(self.ticks_per_beat)
    }

    /// Lowest and highest pitch of the pitched (non-drum) parts.
    pub fn pitch_range(&self) -> Option<(u8, u8)> {
        let pitches = self.parts.iter().filter(|part| !part.is_drum).flat_map(|part| &part.notes);
        pitches.fold(None, |range, note| match range {
            None => Some((note.pitch, note.pitch)),
            Some((low, high)) => Some((low.min(note.pitch), high.max(note.pitch))),
        })
    }
}

/// Seconds from the start to `tick` through `tempos` (sorted by tick), without
/// building a [`TempoMap`]: constant memory, whatever the number of changes.
pub fn seconds_at(ticks_per_beat: u16, tempos: &[TempoChange], tick: u64) -> f64 {
    let ticks_per_beat = f64::from(ticks_per_beat.max(1));
    let (mut seconds, mut from, mut micros) = (0.0, 0u64, DEFAULT_MICROS_PER_BEAT);
    for change in tempos.iter().take_while(|change| change.tick <= tick) {
        seconds += span_seconds(change.tick - from, micros, ticks_per_beat);
        (from, micros) = (change.tick, change.micros_per_beat);
    }
    seconds + span_seconds(tick - from, micros, ticks_per_beat)
}

/// Seconds that `ticks` last at one tempo.
fn span_seconds(ticks: u64, micros_per_beat: u32, ticks_per_beat: f64) -> f64 {
    ticks as f64 * f64::from(micros_per_beat) / 1e6 / ticks_per_beat
}

/// Ticks to seconds through the tempo changes.
#[derive(Debug, Clone)]
pub struct TempoMap {
    ticks_per_beat: f64,
    /// (tick, seconds at that tick, microseconds per beat from there on)
    segments: Vec<(u64, f64, u32)>,
}

impl TempoMap {
    pub fn new(ticks_per_beat: u16, tempos: &[TempoChange]) -> TempoMap {
        let ticks_per_beat = f64::from(ticks_per_beat.max(1));
        let mut segments = vec![(0, 0.0, DEFAULT_MICROS_PER_BEAT)];
        for change in tempos {
            let &(tick, seconds, micros) = segments.last().expect("segments start non-empty");
            let at = seconds + span_seconds(change.tick - tick, micros, ticks_per_beat);
            if change.tick == tick {
                segments.pop();
            }
            segments.push((change.tick, at, change.micros_per_beat));
        }
        TempoMap { ticks_per_beat, segments }
    }

    pub fn seconds(&self, tick: u64) -> f64 {
        let index = self.segments.partition_point(|&(start, _, _)| start <= tick).saturating_sub(1);
        let (start, seconds, micros) = self.segments[index];
        seconds + span_seconds(tick - start, micros, self.ticks_per_beat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_follow_tempo_changes() {
        // 480 ticks per beat: 2 beats at 120 bpm (1 s), then 60 bpm (1 s per beat).
        let map = TempoMap::new(
            480,
            &[
                TempoChange { tick: 0, micros_per_beat: 500_000 },
                TempoChange { tick: 960, micros_per_beat: 1_000_000 },
            ],
        );
        assert_eq!(map.seconds(0), 0.0);
        assert!((map.seconds(480) - 0.5).abs() < 1e-12);
        assert!((map.seconds(960) - 1.0).abs() < 1e-12);
        assert!((map.seconds(1440) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn one_look_up_agrees_with_the_map() {
        let tempos = [
            TempoChange { tick: 0, micros_per_beat: 500_000 },
            TempoChange { tick: 960, micros_per_beat: 1_000_000 },
            TempoChange { tick: 1000, micros_per_beat: 250_000 },
        ];
        let map = TempoMap::new(480, &tempos);
        for tick in [0, 479, 960, 999, 1000, 5000] {
            assert!((seconds_at(480, &tempos, tick) - map.seconds(tick)).abs() < 1e-12, "tick {tick}");
        }
        assert!((seconds_at(96, &[], 96 * 4) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn no_tempo_means_120_bpm() {
        let map = TempoMap::new(96, &[]);
        assert!((map.seconds(96 * 4) - 2.0).abs() < 1e-12);
    }
}
