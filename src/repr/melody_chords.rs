//! `melody-chords`: the folk-RNN style of frames, a melody and a chord per step.
//!
//! On a fixed grid (8th notes by default), each frame holds:
//! - the melody: the highest sounding pitch, as `onset` of a pitch, `hold` of the
//!   note already sounding, or `rest`;
//! - the chord: the other sounding pitch classes, named by root and quality
//!   (major, minor, diminished, augmented), or none.
//!
//! Decoding plays the melody and voices each chord as a block chord from C3 up,
//! held until the chord changes.

use serde::{Deserialize, Serialize};

use super::DECODED_TICKS_PER_BEAT;
use crate::midi::{Note, Part, Score};

pub const MELODY_CLASSES: i64 = 130;
pub const CHORD_CLASSES: i64 = 1 + 12 * QUALITIES.len() as i64;
const REST: u8 = 0;
const HOLD: u8 = 1;
/// Intervals above the root of each chord quality.
const QUALITIES: [[u8; 3]; 4] = [[0, 4, 7], [0, 3, 7], [0, 3, 6], [0, 4, 8]];
const CHORD_BASE: u8 = 48;
const MELODY_VELOCITY: u8 = 96;
const CHORD_VELOCITY: u8 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MelodyChordsConfig {
    pub steps_per_beat: u16,
}

impl Default for MelodyChordsConfig {
    fn default() -> Self {
        MelodyChordsConfig { steps_per_beat: 2 }
    }
}

/// Melody class (0 rest, 1 hold, 2 + pitch) and chord class (0 none, 1 + root × 4 + quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub melody: u8,
    pub chord: u8,
}

pub fn encode(score: &Score, config: &MelodyChordsConfig) -> Vec<Frame> {
    let step = (u64::from(score.ticks_per_beat) / u64::from(config.steps_per_beat.max(1))).max(1);
    let notes: Vec<&Note> = score.parts.iter().filter(|p| !p.is_drum).flat_map(|p| &p.notes).collect();
    let frames = score.end_tick().div_ceil(step);
    (0..frames)
        .map(|index| {
            let (start, end) = (index * step, (index + 1) * step);
            let sounding: Vec<&&Note> = notes.iter().filter(|n| n.start < end && n.end() > start).collect();
            let Some(top) = sounding.iter().max_by_key(|n| (n.pitch, std::cmp::Reverse(n.start))) else {
                return Frame { melody: REST, chord: 0 };
            };
            let melody = if top.start >= start { 2 + top.pitch } else { HOLD };
            let classes: Vec<u8> =
                sounding.iter().filter(|n| n.pitch != top.pitch).map(|n| n.pitch % 12).collect();
            Frame { melody, chord: chord_class(&classes) }
        })
        .collect()
}

/// The best-fitting (root, quality) by how many of its tones sound; none below two tones.
pub fn chord_class(classes: &[u8]) -> u8 {
    let mut present = [false; 12];
    for &class in classes {
        present[usize::from(class % 12)] = true;
    }
    if present.iter().filter(|p| **p).count() < 2 {
        return 0;
    }
    let mut best = (0usize, 0u8);
    for root in 0..12u8 {
        for (quality, intervals) in (0u8..).zip(QUALITIES.iter()) {
            let fit = intervals.iter().filter(|&&i| present[usize::from((root + i) % 12)]).count();
            if fit > best.0 {
                best = (fit, 1 + root * QUALITIES.len() as u8 + quality);
            }
        }
    }
    best.1
}

pub fn decode(frames: &[Frame], config: &MelodyChordsConfig) -> Score {
    let step = u64::from(DECODED_TICKS_PER_BEAT) / u64::from(config.steps_per_beat.max(1));
    let mut melody: Vec<Note> = Vec::new();
    let mut chords: Vec<Note> = Vec::new();
    let mut current_chord: (u8, u64) = (0, 0);
    let flush_chord = |chords: &mut Vec<Note>, (class, since): (u8, u64), until: u64| {
        if class == 0 || until <= since {
            return;
        }
        let (root, quality) = ((class - 1) / QUALITIES.len() as u8, (class - 1) % QUALITIES.len() as u8);
        for interval in QUALITIES[usize::from(quality)] {
            let pitch = CHORD_BASE + root + interval;
            chords.push(Note {
                pitch,
                velocity: CHORD_VELOCITY,
                start: since * step,
                duration: (until - since) * step,
            });
        }
    };
    for (index, frame) in (0u64..).zip(frames) {
        match frame.melody {
            REST => {}
            HOLD => {
                if let Some(last) = melody.last_mut().filter(|n| n.end() == index * step) {
                    last.duration += step;
                }
            }
            pitch => melody.push(Note {
                pitch: pitch - 2,
                velocity: MELODY_VELOCITY,
                start: index * step,
                duration: step,
            }),
        }
        if frame.chord != current_chord.0 {
            flush_chord(&mut chords, current_chord, index);
            current_chord = (frame.chord, index);
        }
    }
    flush_chord(&mut chords, current_chord, frames.len() as u64);
    chords.sort_by_key(|n| (n.start, n.pitch));
    let parts = [Part::new(0, 0, melody), Part::new(1, 0, chords)];
    Score::of_parts(DECODED_TICKS_PER_BEAT, parts.into_iter().filter(|p| !p.notes.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(notes: &[(u8, u64, u64)]) -> Score {
        let notes =
            notes.iter().map(|&(pitch, start, duration)| Note { pitch, velocity: 80, start, duration });
        Score::of_parts(480, vec![Part::new(0, 0, notes.collect())])
    }

    #[test]
    fn melody_is_the_top_line_and_chords_are_named() {
        // E5 a quarter over a C major triad, then G5 an eighth with no chord, then rest.
        let piece = score(&[(76, 0, 480), (48, 0, 480), (52, 0, 480), (55, 0, 480), (79, 480, 240)]);
        let frames = encode(&piece, &MelodyChordsConfig::default());
        let c_major = 1;
        assert_eq!(
            frames,
            [
                Frame { melody: 2 + 76, chord: c_major },
                Frame { melody: HOLD, chord: c_major },
                Frame { melody: 2 + 79, chord: 0 }
            ]
        );
        assert_eq!(chord_class(&[9, 0, 4]), 1 + 9 * 4 + 1, "A minor");
        assert_eq!(chord_class(&[7]), 0, "one tone is no chord");
    }

    #[test]
    fn decoding_plays_the_melody_and_block_chords() {
        let frames = [
            Frame { melody: 2 + 76, chord: 1 },
            Frame { melody: HOLD, chord: 1 },
            Frame { melody: REST, chord: 0 },
        ];
        let decoded = decode(&frames, &MelodyChordsConfig::default());
        let melody: Vec<_> = decoded.parts[0].notes.iter().map(|n| (n.pitch, n.start, n.duration)).collect();
        assert_eq!(melody, [(76, 0, 480)]);
        let chord: Vec<_> = decoded.parts[1].notes.iter().map(|n| (n.pitch, n.duration)).collect();
        assert_eq!(chord, [(48, 480), (52, 480), (55, 480)]);
        assert_eq!(encode(&decoded, &MelodyChordsConfig::default()), frames[..2]);
    }
}
