//! `events` tokens → [`Score`]: lenient, so that whatever a model samples decodes.

use std::collections::BTreeMap;

use super::parts::{PartSpec, declared_parts, ensure_declared};
use super::tokens::Token;
use super::{EventsConfig, bar_units};
use crate::midi::{Note, Part, Score, TempoChange, TimeSignature, assign_channels};
use crate::repr::DECODED_TICKS_PER_BEAT;

/// Rebuilds a score; out-of-grammar tokens (a `Dur` with no note, say) are skipped.
///
/// With parts, the score has one part per declared part, in header order, with its
/// name, program and drum flag (a `Part_i` used but never declared is an unnamed
/// piano part); without, one part per program. Channels follow
/// [`assign_channels`].
pub fn decode(tokens: &[Token], config: &EventsConfig) -> Score {
    let unit = u64::from(DECODED_TICKS_PER_BEAT) / u64::from(config.grid_per_beat.max(1));
    let with_parts = config.max_parts > 0;
    let mut decoder = Decoder { with_parts, voice: (!with_parts).then_some(0), ..Decoder::default() };
    for &token in tokens {
        decoder.step(token, config.grid_per_beat);
    }
    decoder.finish_note();

    let mut by_voice: BTreeMap<u8, Vec<Note>> = BTreeMap::new();
    for (voice, note) in decoder.notes {
        let scaled = Note { start: note.start * unit, duration: note.duration * unit, ..note };
        by_voice.entry(voice).or_default().push(scaled);
    }
    let mut parts: Vec<Part> = if with_parts {
        let mut declared = declared_parts(tokens);
        if let Some(&last) = by_voice.keys().next_back() {
            ensure_declared(&mut declared, last);
        }
        declared
            .into_iter()
            .zip(0u8..)
            .map(|(spec, index)| part_of(spec, by_voice.remove(&index).unwrap_or_default()))
            .collect()
    } else {
        let program = |program: u8| PartSpec { name: None, program, drums: false };
        by_voice.into_iter().map(|(voice, notes)| part_of(program(voice), notes)).collect()
    };
    assign_channels(&mut parts);
    Score {
        ticks_per_beat: DECODED_TICKS_PER_BEAT,
        tempos: decoder
            .tempos
            .into_iter()
            .map(|(tick, bpm)| TempoChange {
                tick: tick * unit,
                micros_per_beat: 60_000_000 / u32::from(bpm),
            })
            .collect(),
        time_signatures: decoder
            .meters
            .into_iter()
            .map(|(tick, numerator, denominator)| TimeSignature { tick: tick * unit, numerator, denominator })
            .collect(),
        key_signatures: Vec::new(),
        parts,
    }
}

/// A part as declared, with its notes sorted; its channel is assigned afterwards.
fn part_of(spec: PartSpec, mut notes: Vec<Note>) -> Part {
    notes.sort_by_key(|n| (n.start, n.pitch));
    Part { name: spec.name, program: spec.program, channel: 0, is_drum: spec.drums, notes }
}

#[derive(Default)]
struct Decoder {
    /// Part tokens (rather than program tokens) say whose the notes are.
    with_parts: bool,
    /// Start of the current bar and its length, in grid units; None before the first bar.
    bar: Option<(u64, u64)>,
    meter: Option<(u8, u8)>,
    position: Option<u64>,
    /// The part (with parts) or program (without) of the next note; with parts,
    /// every position names its parts anew.
    voice: Option<u8>,
    pending: Option<(u8, u8, u64)>,
    notes: Vec<(u8, Note)>,
    tempos: BTreeMap<u64, u16>,
    meters: Vec<(u64, u8, u8)>,
}

impl Decoder {
    fn step(&mut self, token: Token, grid_per_beat: u16) {
        if !matches!(token, Token::Vel(_) | Token::Dur(_)) {
            self.finish_note();
        }
        let (n, d) = self.meter.unwrap_or((4, 4));
        match token {
            Token::Bar => {
                let start = self.bar.map_or(0, |(start, length)| start + length);
                self.bar = Some((start, bar_units(n, d, grid_per_beat)));
                self.position = None;
                self.forget_part();
            }
            Token::TimeSig(n, d) => {
                if let Some((start, _)) = self.bar {
                    self.meter = Some((n, d));
                    self.bar = Some((start, bar_units(n, d, grid_per_beat)));
                    self.meters.push((start, n, d));
                }
            }
            Token::Pos(p) => {
                self.position = self.bar.map(|(start, _)| start + u64::from(p));
                self.forget_part();
            }
            Token::Tempo(bpm) if bpm > 0 => {
                if let Some(at) = self.position {
                    self.tempos.insert(at, bpm);
                }
            }
            Token::Prog(program) if !self.with_parts => self.voice = Some(program),
            Token::Part(index) if self.with_parts && self.position.is_some() => self.voice = Some(index),
            Token::Pitch(pitch) if self.position.is_some() && pitch <= 127 => {
                self.pending = Some((pitch, 64, 0));
            }
            Token::Vel(velocity) => {
                if let Some(pending) = &mut self.pending {
                    pending.1 = velocity.clamp(1, 127);
                }
            }
            Token::Dur(units) => {
                if let Some(pending) = &mut self.pending {
                    pending.2 += u64::from(units);
                }
            }
            // The header (read by `declared_parts`) and out-of-place tokens.
            Token::Tempo(_)
            | Token::Prog(_)
            | Token::Part(_)
            | Token::Drums
            | Token::Name(_)
            | Token::Pitch(_) => {}
        }
    }

    fn forget_part(&mut self) {
        if self.with_parts {
            self.voice = None;
        }
    }

    fn finish_note(&mut self) {
        if let (Some((pitch, velocity, duration)), Some(start), Some(voice)) =
            (self.pending.take(), self.position, self.voice)
            && duration > 0
        {
            self.notes.push((voice, Note { pitch, velocity, start, duration }));
        }
    }
}
