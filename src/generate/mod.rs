//! Generation: the request, the constrained decoders, the device engine that steps
//! every live session of a model together, and the compositions it produces.

pub mod admission;
pub mod compose;
pub mod decoder;
pub mod engine;
pub mod evaluation;
pub mod given;
mod line_state;
pub mod load;
pub mod lookahead;
pub mod metrics;
pub mod offline;
pub mod parts;
pub mod request;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::midi::{Note, Part, Score, TempoChange, TimeSignature};
use crate::repr::DECODED_TICKS_PER_BEAT;
use crate::repr::events::PartName;

/// One generated note, in beats and in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"pitch": 62, "velocity": 90, "program": 0, "start_beat": 1.0, "duration_beats": 0.5,
    "start_seconds": 0.625, "duration_seconds": 0.3125}))]
pub struct GeneratedNote {
    /// MIDI pitch.
    pub pitch: u8,
    pub velocity: u8,
    /// General MIDI program of its part.
    pub program: u8,
    pub start_beat: f64,
    pub duration_beats: f64,
    pub start_seconds: f64,
    pub duration_seconds: f64,
    /// The part it belongs to, for a model with parts: its index in the piece's
    /// part table, and its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<NotePart>,
}

/// A note's part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotePart {
    pub index: u8,
    #[schema(value_type = Option<String>, example = "Soprano")]
    pub name: Option<PartName>,
}

/// What a finished session produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub notes: Vec<GeneratedNote>,
    /// (beat, bpm); at least one, at beat 0.
    pub tempos: Vec<(f64, f64)>,
    /// (beat, numerator, denominator).
    pub meters: Vec<(f64, u8, u8)>,
    /// Model steps taken.
    pub tokens: u32,
    /// Most sessions stepped together while this one ran.
    pub peak_batch: usize,
    /// From the session's start on its worker to its last step.
    pub generated_in: std::time::Duration,
    /// For a look-ahead harmonization: the model's probability of the given part,
    /// in nats, as its candidates estimated it (see [`lookahead`]).
    pub given_log_likelihood: Option<f64>,
}

impl Piece {
    /// The piece as a score (480 ticks per beat): a track per part, named after it,
    /// when the notes have parts; else a track per program, named after its General
    /// MIDI instrument.
    pub fn score(&self) -> Score {
        let ticks = |beats: f64| (beats * f64::from(DECODED_TICKS_PER_BEAT)).round() as u64;
        // (part index, program): notes without parts group by program alone.
        let mut tracks: Vec<(Option<u8>, u8)> =
            self.notes.iter().map(|note| (note.part.map(|part| part.index), note.program)).collect();
        tracks.sort_unstable();
        tracks.dedup();
        let mut parts: Vec<Part> = tracks
            .into_iter()
            .map(|(part, program)| {
                let belongs = |note: &&GeneratedNote| match part {
                    Some(index) => note.part.is_some_and(|p| p.index == index),
                    None => note.part.is_none() && note.program == program,
                };
                let mut notes: Vec<Note> = self
                    .notes
                    .iter()
                    .filter(belongs)
                    .map(|note| Note {
                        pitch: note.pitch,
                        velocity: note.velocity.clamp(1, 127),
                        start: ticks(note.start_beat),
                        duration: ticks(note.duration_beats).max(1),
                    })
                    .collect();
                notes.sort_by_key(|note| (note.start, note.pitch));
                let part_name = self.notes.iter().find(belongs).and_then(|note| note.part?.name);
                let name = match part_name {
                    Some(name) => name.as_str().to_owned(),
                    None => crate::midi::program_name(program).to_owned(),
                };
                Part { name: Some(name), ..Part::new(0, program, notes) }
            })
            .collect();
        crate::midi::assign_channels(&mut parts);
        let mut score = Score::of_parts(DECODED_TICKS_PER_BEAT, parts);
        score.tempos = self
            .tempos
            .iter()
            .map(|&(beat, bpm)| TempoChange {
                tick: ticks(beat),
                micros_per_beat: (60_000_000.0 / bpm).round() as u32,
            })
            .collect();
        score.time_signatures = self
            .meters
            .iter()
            .map(|&(beat, numerator, denominator)| TimeSignature {
                tick: ticks(beat),
                numerator,
                denominator,
            })
            .collect();
        score
    }

    pub fn seconds(&self) -> f64 {
        self.notes.iter().map(|note| note.start_seconds + note.duration_seconds).fold(0.0, f64::max)
    }
}

/// Every note of a score, in beats and seconds, ordered by onset then pitch.
pub fn notes_of(score: &Score) -> Vec<GeneratedNote> {
    let map = score.tempo_map();
    let mut notes: Vec<GeneratedNote> = score
        .parts
        .iter()
        .filter(|part| !part.is_drum)
        .flat_map(|part| part.notes.iter().map(move |note| (part.program, note)))
        .map(|(program, note)| {
            let start_seconds = map.seconds(note.start);
            GeneratedNote {
                pitch: note.pitch,
                velocity: note.velocity,
                program,
                start_beat: score.beats(note.start),
                duration_beats: score.beats(note.duration),
                start_seconds,
                duration_seconds: map.seconds(note.end()) - start_seconds,
                part: None,
            }
        })
        .collect();
    notes.sort_by(|a, b| a.start_beat.total_cmp(&b.start_beat).then(a.pitch.cmp(&b.pitch)));
    notes
}

/// A piece from a score made without the events decoder (offline families).
pub fn piece_of(score: &Score, tokens: u32) -> Piece {
    let beat = |tick: u64| score.beats(tick);
    let mut tempos: Vec<(f64, f64)> = score.tempos.iter().map(|t| (beat(t.tick), t.bpm())).collect();
    if tempos.first().is_none_or(|&(at, _)| at > 0.0) {
        tempos.insert(0, (0.0, 120.0));
    }
    Piece {
        notes: notes_of(score),
        tempos,
        meters: score.time_signatures.iter().map(|m| (beat(m.tick), m.numerator, m.denominator)).collect(),
        tokens,
        peak_batch: 1,
        generated_in: std::time::Duration::ZERO,
        given_log_likelihood: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_becomes_a_score_and_back() {
        let note = |pitch, start_beat, duration_beats, program| GeneratedNote {
            pitch,
            velocity: 80,
            program,
            start_beat,
            duration_beats,
            start_seconds: start_beat * 0.5,
            duration_seconds: duration_beats * 0.5,
            part: None,
        };
        let piece = Piece {
            notes: vec![note(60, 0.0, 1.0, 0), note(64, 0.5, 0.25, 0), note(43, 1.0, 2.0, 32)],
            tempos: vec![(0.0, 120.0)],
            meters: vec![(0.0, 3, 4)],
            tokens: 12,
            peak_batch: 1,
            generated_in: std::time::Duration::ZERO,
            given_log_likelihood: None,
        };
        let score = piece.score();
        assert_eq!(score.parts.len(), 2, "one part per program");
        assert_eq!(score.time_signatures[0].numerator, 3);
        assert_eq!(notes_of(&score), piece.notes);
        let read = crate::midi::read(&crate::midi::write(&score)).unwrap();
        assert_eq!(notes_of(&read), piece.notes);
        assert_eq!(piece.seconds(), 1.5);
    }
}
