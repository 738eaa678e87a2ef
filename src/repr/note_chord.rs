//! `note-chord`: the tutorials' tokens, limits included.
//!
//! Three ways to read a file ([`Parse`]):
//! - the two tutorials' own, exactly as music21 parses and they walk it (see
//!   [`music21`]): `music21-flat` for Play Bach (every note, chord and rest of the
//!   score in order, chords as pitch names in note-on order), `music21-first-instrument`
//!   for Classical-Piano-Composer (the notes and chords of the first instrument's
//!   part, chords in normal order, no rests). One token per element: a run of 16ths
//!   is a run of tokens. The `play-bach` and `classical-piano` presets use these.
//! - `grid`: one token per fixed step (0.5 beat by default), the pitches whose onsets
//!   fall on that step, `R` where nothing starts. It is what the tutorials *write*
//!   (their outputs sit 0.5 beats apart), read back: it keeps where notes fall in the
//!   bar, which the element walk loses, and merges what sounds together across parts
//!   into one chord. It stays as an option for corpora where that is wanted.
//!
//! Decoding places tokens 0.5 beats apart, as the tutorials wrote them: each onset
//! sounds until the next, `R` is silence. None of the parses keeps durations, so
//! none comes back. Velocity and instruments are lost (drums never become tokens).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DECODED_TICKS_PER_BEAT, music21, parse_pitch_name, pitch_name};
use crate::midi::{Note, Part, Score};

pub const REST: &str = "R";
/// Normal-order chords carry no octave; the tutorials voiced them from middle C up.
const NORMAL_ORDER_BASE: u8 = 60;
const DECODED_VELOCITY: u8 = 90;

/// How a file is read into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parse {
    /// One token per step of `step_beats`: the pitches starting on it, or `R`.
    #[default]
    Grid,
    /// music21's `score.flatten()`: notes, chords and rests in order (Play Bach).
    Music21Flat,
    /// music21's `partitionByInstrument(score).parts[0]`: notes and chords
    /// (Classical-Piano-Composer).
    Music21FirstInstrument,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteChordConfig {
    /// Length of one step in beats: of the grid, and between decoded tokens.
    pub step_beats: f64,
    /// Chords as normal-order pitch classes (`4.7.11`) instead of pitch names.
    pub normal_order: bool,
    /// Models from before the tutorial parses existed read on the grid.
    #[serde(default)]
    pub parse: Parse,
}

impl Default for NoteChordConfig {
    fn default() -> Self {
        NoteChordConfig { step_beats: 0.5, normal_order: false, parse: Parse::Grid }
    }
}

/// The tokens of a MIDI file: the tutorial parses read its bytes (music21 sees the
/// file's own events), the grid reads its score.
pub fn encode_file(bytes: &[u8], score: &Score, config: &NoteChordConfig) -> Vec<String> {
    let walk = match config.parse {
        Parse::Grid => return encode(score, config),
        Parse::Music21Flat => music21::Walk::Flat,
        Parse::Music21FirstInstrument => music21::Walk::FirstInstrument,
    };
    // The bytes were read once already (the score came from them): midly accepts them.
    music21::tokens(bytes, walk, config.normal_order).unwrap_or_default()
}

/// The tokens of a score. For the tutorial parses, a score without a file of its
/// own (a primer) is written as MIDI first, one track per part.
pub fn encode(score: &Score, config: &NoteChordConfig) -> Vec<String> {
    if config.parse != Parse::Grid {
        return encode_file(&crate::midi::write(score), score, config);
    }
    let step_ticks = config.step_beats * f64::from(score.ticks_per_beat);
    let mut onsets: BTreeMap<u64, BTreeSet<u8>> = BTreeMap::new();
    for note in score.parts.iter().filter(|part| !part.is_drum).flat_map(|part| &part.notes) {
        let step = (note.start as f64 / step_ticks).round() as u64;
        onsets.entry(step).or_default().insert(note.pitch);
    }
    let (Some(&first), Some(&last)) = (onsets.keys().next(), onsets.keys().next_back()) else {
        return Vec::new();
    };
    (first..=last)
        .map(|step| match onsets.get(&step) {
            Some(pitches) => token(pitches, config.normal_order),
            None => REST.to_owned(),
        })
        .collect()
}

fn token(pitches: &BTreeSet<u8>, normal_order: bool) -> String {
    if pitches.len() == 1 || !normal_order {
        let names: Vec<String> = pitches.iter().map(|&pitch| pitch_name(pitch)).collect();
        return names.join(".");
    }
    let classes: BTreeSet<u8> = pitches.iter().map(|pitch| pitch % 12).collect();
    let order = normal_order_of(&classes.into_iter().collect::<Vec<_>>());
    order.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
}

/// music21's `Chord.normalOrder` of sorted, distinct pitch classes: the rotation
/// with the smallest span, then the smallest intervals from its first class upwards
/// (packed to the left); ties go to the rotation starting lowest.
pub fn normal_order_of(classes: &[u8]) -> Vec<u8> {
    let n = classes.len();
    let rotations = (0..n).map(|start| (0..n).map(|i| classes[(start + i) % n]).collect::<Vec<u8>>());
    let key = |rotation: &Vec<u8>| -> Vec<u8> {
        let interval = |i: usize| (rotation[i] + 12 - rotation[0]) % 12;
        std::iter::once(interval(n - 1)).chain((1..n.saturating_sub(1)).map(interval)).collect()
    };
    rotations.min_by_key(key).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a note-chord token: `{0}`")]
pub struct UnknownToken(pub String);

/// Pitches of one token; empty for a rest.
pub fn pitches_of(token: &str) -> Result<Vec<u8>, UnknownToken> {
    if token == REST {
        return Ok(Vec::new());
    }
    let unknown = || UnknownToken(token.to_owned());
    let mut pitches: Vec<u8> = token
        .split('.')
        .map(|part| match part.parse::<u8>() {
            Ok(class) if class < 12 => Ok(NORMAL_ORDER_BASE + class),
            Ok(_) => Err(unknown()),
            Err(_) => parse_pitch_name(part).ok_or_else(unknown),
        })
        .collect::<Result<_, _>>()?;
    // Normal order wraps around the octave: voice it upwards from its first class.
    if token.split('.').all(|part| part.parse::<u8>().is_ok()) {
        for i in 1..pitches.len() {
            while pitches[i] < pitches[i - 1] {
                pitches[i] += 12;
            }
        }
    }
    Ok(pitches)
}

/// A one-part score: each onset sounds until the next one; the last lasts one step.
pub fn decode(tokens: &[String], config: &NoteChordConfig) -> Result<Score, UnknownToken> {
    let step_ticks = (config.step_beats * f64::from(DECODED_TICKS_PER_BEAT)).round().max(1.0) as u64;
    let onsets: Vec<(u64, Vec<u8>)> = tokens
        .iter()
        .zip(0u64..)
        .map(|(token, step)| Ok((step * step_ticks, pitches_of(token)?)))
        .filter(|onset| !matches!(onset, Ok((_, pitches)) if pitches.is_empty()))
        .collect::<Result<_, _>>()?;
    let total = tokens.len() as u64 * step_ticks;
    let mut notes = Vec::new();
    for (index, (start, pitches)) in onsets.iter().enumerate() {
        let end = onsets.get(index + 1).map_or(total, |(next, _)| *next);
        for &pitch in pitches {
            notes.push(Note { pitch, velocity: DECODED_VELOCITY, start: *start, duration: end - start });
        }
    }
    notes.sort_by_key(|note| (note.start, note.pitch));
    notes.dedup_by_key(|note| (note.start, note.pitch));
    Ok(Score::of_parts(DECODED_TICKS_PER_BEAT, vec![Part::new(0, 0, notes)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(notes: &[(u8, u64, u64)]) -> Score {
        let notes =
            notes.iter().map(|&(pitch, start, duration)| Note { pitch, velocity: 64, start, duration });
        Score::of_parts(480, vec![Part::new(0, 0, notes.collect())])
    }

    #[test]
    fn notes_chords_and_rests_on_the_half_beat_grid() {
        // G2 on beat 0, A2+F#3 on beat 1 (step 2), nothing on step 1.
        let piece = score(&[(43, 0, 480), (45, 480, 480), (54, 480, 480)]);
        assert_eq!(encode(&piece, &NoteChordConfig::default()), ["G2", "R", "A2.F#3"]);
    }

    #[test]
    fn normal_order_chords_are_pitch_classes() {
        // E minor triad E3 G3 B3 → normal order 4.7.11; C major first inversion → 0.4.7.
        let piece = score(&[
            (52, 0, 240),
            (55, 0, 240),
            (59, 0, 240),
            (64, 240, 240),
            (67, 240, 240),
            (72, 240, 240),
        ]);
        let config = NoteChordConfig { normal_order: true, ..NoteChordConfig::default() };
        assert_eq!(encode(&piece, &config), ["4.7.11", "0.4.7"]);
        assert_eq!(normal_order_of(&[0, 1, 11]), vec![11, 0, 1]);
        assert_eq!(normal_order_of(&[2, 5, 8, 11]), vec![2, 5, 8, 11]);
    }

    #[test]
    fn decoding_sustains_each_onset_until_the_next() {
        let tokens: Vec<String> = ["G2", "R", "A2.F#3", "4.7.11"].iter().map(|t| t.to_string()).collect();
        let decoded = decode(&tokens, &NoteChordConfig::default()).unwrap();
        let notes: Vec<_> = decoded.parts[0].notes.iter().map(|n| (n.pitch, n.start, n.duration)).collect();
        assert_eq!(
            notes,
            vec![
                (43, 0, 480),
                (45, 480, 240),
                (54, 480, 240),
                (64, 720, 240),
                (67, 720, 240),
                (71, 720, 240)
            ]
        );
        assert_eq!(decode(&["Q7".to_owned()], &NoteChordConfig::default()), Err(UnknownToken("Q7".into())));
    }

    #[test]
    fn a_score_on_the_grid_comes_back_with_the_same_onsets() {
        let piece = score(&[(60, 0, 240), (64, 240, 480), (67, 720, 240)]);
        let config = NoteChordConfig::default();
        let again = decode(&encode(&piece, &config), &config).unwrap();
        assert_eq!(
            again.parts[0].notes,
            piece.parts[0].notes.iter().map(|n| Note { velocity: 90, ..*n }).collect::<Vec<_>>()
        );
    }
}
