//! `pianoroll`: 88-key frames (MIDI 21..=108) on a fixed grid, the representation of
//! the polyphonic-music benchmark (JSB Chorales, Boulanger-Lewandowski et al. 2012).
//!
//! A frame holds the pitches sounding at its start. Held and repeated notes are not
//! told apart, as in the benchmark; decoding merges a pitch held over consecutive
//! frames into one note.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DECODED_TICKS_PER_BEAT;
use crate::midi::{Note, Part, Score};

pub const LOWEST_KEY: u8 = 21;
pub const HIGHEST_KEY: u8 = 108;
pub const KEYS: usize = 88;
const DECODED_VELOCITY: u8 = 80;

/// Frames per beat (quarter note).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Grid {
    #[default]
    Quarter,
    Eighth,
    Sixteenth,
}

impl Grid {
    pub fn frames_per_beat(self) -> u64 {
        match self {
            Grid::Quarter => 1,
            Grid::Eighth => 2,
            Grid::Sixteenth => 4,
        }
    }
}

/// The sounding pitches of one frame, ascending.
pub type Frame = Vec<u8>;

pub fn encode(score: &Score, grid: Grid) -> Vec<Frame> {
    let step = f64::from(score.ticks_per_beat) / grid.frames_per_beat() as f64;
    let frame_at = |tick: u64| (tick as f64 / step).ceil() as usize;
    let mut frames = vec![Frame::new(); frame_at(score.end_tick())];
    let keys = score.parts.iter().filter(|part| !part.is_drum).flat_map(|part| &part.notes);
    for note in keys.filter(|note| (LOWEST_KEY..=HIGHEST_KEY).contains(&note.pitch)) {
        // Frames whose start lies in [start, end).
        for frame in &mut frames[frame_at(note.start)..frame_at(note.end())] {
            frame.push(note.pitch);
        }
    }
    for frame in &mut frames {
        frame.sort_unstable();
        frame.dedup();
    }
    frames
}

/// 88 zeros and ones per frame, lowest key first: the network's input and target.
pub fn to_binary(frame: &[u8]) -> [f32; KEYS] {
    let mut keys = [0.0; KEYS];
    for &pitch in frame.iter().filter(|&&pitch| (LOWEST_KEY..=HIGHEST_KEY).contains(&pitch)) {
        keys[usize::from(pitch - LOWEST_KEY)] = 1.0;
    }
    keys
}

/// The frame a binary 88-key vector stands for: the keys above one half.
pub fn from_binary(keys: &[f32]) -> Frame {
    (LOWEST_KEY..=HIGHEST_KEY).zip(keys).filter(|(_, on)| **on > 0.5).map(|(pitch, _)| pitch).collect()
}

pub fn decode(frames: &[Frame], grid: Grid) -> Score {
    let step = u64::from(DECODED_TICKS_PER_BEAT) / grid.frames_per_beat();
    let mut sounding: BTreeMap<u8, u64> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut close = |pitch: u8, start: u64, end: u64| {
        notes.push(Note {
            pitch,
            velocity: DECODED_VELOCITY,
            start: start * step,
            duration: (end - start) * step,
        });
    };
    for (index, frame) in (0u64..).zip(frames) {
        let ended: Vec<u8> = sounding.keys().copied().filter(|pitch| !frame.contains(pitch)).collect();
        for pitch in ended {
            let start = sounding.remove(&pitch).expect("taken from the map's own keys");
            close(pitch, start, index);
        }
        for &pitch in frame {
            sounding.entry(pitch).or_insert(index);
        }
    }
    for (pitch, start) in sounding {
        close(pitch, start, frames.len() as u64);
    }
    notes.sort_by_key(|note| (note.start, note.pitch));
    Score::of_parts(DECODED_TICKS_PER_BEAT, vec![Part::new(0, 0, notes)])
}

/// The benchmark's JSON: `{"train", "valid", "test"}` → sequences → frames → pitches.
#[derive(Debug, Clone)]
pub struct BenchmarkSplits {
    pub train: Vec<Vec<Frame>>,
    pub valid: Vec<Vec<Frame>>,
    pub test: Vec<Vec<Frame>>,
}

/// The JSON as written: some copies write pitches as floats (`73.0`).
#[derive(Deserialize)]
struct WrittenSplits {
    train: Vec<Vec<Vec<f64>>>,
    valid: Vec<Vec<Vec<f64>>>,
    test: Vec<Vec<Vec<f64>>>,
}

impl BenchmarkSplits {
    pub fn load(path: &Path) -> anyhow::Result<BenchmarkSplits> {
        let text = std::fs::read_to_string(path)?;
        let written: WrittenSplits = serde_json::from_str(&text)?;
        Ok(BenchmarkSplits {
            train: frames_of("train", written.train)?,
            valid: frames_of("valid", written.valid)?,
            test: frames_of("test", written.test)?,
        })
    }
}

/// A split's frames, each sorted, every pitch a whole MIDI number (`73` or `73.0`).
fn frames_of(split: &str, sequences: Vec<Vec<Vec<f64>>>) -> anyhow::Result<Vec<Vec<Frame>>> {
    sequences
        .into_iter()
        .enumerate()
        .map(|(sequence, frames)| {
            frames
                .into_iter()
                .enumerate()
                .map(|(at, pitches)| {
                    let mut frame = pitches
                        .into_iter()
                        .map(|pitch| match pitch {
                            p if p.fract() == 0.0 && (0.0..=127.0).contains(&p) => Ok(p as u8),
                            p => {
                                anyhow::bail!("{split}[{sequence}][{at}]: {p} is not a MIDI pitch (0 to 127)")
                            }
                        })
                        .collect::<anyhow::Result<Frame>>()?;
                    frame.sort_unstable();
                    Ok(frame)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_benchmark_file_may_write_pitches_as_whole_floats_but_not_as_fractions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("splits.json");
        std::fs::write(&path, r#"{"train": [[[64, 60.0], []]], "valid": [[[67]]], "test": []}"#).unwrap();
        let splits = BenchmarkSplits::load(&path).unwrap();
        assert_eq!(splits.train, vec![vec![vec![60, 64], vec![]]]);
        assert_eq!(splits.valid, vec![vec![vec![67]]]);
        for (bad, at) in [("60.5", "train[0][1]"), ("128", "train[0][1]"), ("-1", "train[0][1]")] {
            let text = format!(r#"{{"train": [[[60], [{bad}]]], "valid": [], "test": []}}"#);
            std::fs::write(&path, text).unwrap();
            let error = BenchmarkSplits::load(&path).unwrap_err().to_string();
            assert!(error.starts_with(at) && error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn frames_hold_what_sounds_at_their_start_and_decode_merges_holds() {
        let notes = vec![
            Note { pitch: 60, velocity: 90, start: 0, duration: 960 }, // two beats
            Note { pitch: 64, velocity: 90, start: 480, duration: 240 }, // an eighth on beat 2
            Note { pitch: 67, velocity: 90, start: 720, duration: 240 }, // an eighth off the beat
            Note { pitch: 10, velocity: 90, start: 0, duration: 480 }, // below the keyboard
        ];
        let score = Score::of_parts(480, vec![Part::new(0, 0, notes)]);
        assert_eq!(encode(&score, Grid::Quarter), vec![vec![60], vec![60, 64]]);
        assert_eq!(encode(&score, Grid::Eighth), vec![vec![60], vec![60], vec![60, 64], vec![60, 67]]);
        let decoded = decode(&encode(&score, Grid::Eighth), Grid::Eighth);
        let notes: Vec<_> = decoded.parts[0].notes.iter().map(|n| (n.pitch, n.start, n.duration)).collect();
        assert_eq!(notes, vec![(60, 0, 960), (64, 480, 240), (67, 720, 240)]);
    }

    #[test]
    fn binary_frames_have_one_slot_per_key() {
        let keys = to_binary(&[21, 60, 108, 120]);
        assert_eq!(keys.iter().sum::<f32>(), 3.0);
        assert_eq!((keys[0], keys[39], keys[87]), (1.0, 1.0, 1.0));
        assert_eq!(from_binary(&keys), [21, 60, 108]);
    }
}
