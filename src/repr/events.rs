//! `events`: fugue's default representation, REMI-like, keeping rhythm, dynamics,
//! polyphony, meter and tempo.
//!
//! A piece is a run of bars. Each bar opens with `Bar` (and `TimeSig_n/d` where the
//! meter changes); then, per onset position in the bar, `Pos_p` followed by an
//! optional `Tempo_b` and, per note, `[Prog_p] Pitch_p Vel_v Dur_d...`.
//!
//! Why this design:
//! - Bar and position tokens (REMI) rather than time shifts (TSD): the model always
//!   knows where it is in the bar, which is what makes cadences land on bar lines
//!   and lets generation mask "end on a bar line" and "time signature" directly.
//! - A grid of 24 per beat holds 32nds and 16th-note triplets alike, so the rhythms
//!   of the corpus survive quantisation exactly (the Bach chorales use 32nds).
//! - Durations are sums of `Dur_d` tokens (d ≤ 96 units, 4 beats), so any length
//!   decodes exactly on the grid without a huge duration vocabulary.
//! - Velocity in 32 bins of 4 and tempo as metronome markings keep dynamics and pace
//!   at a resolution people hear, in a small vocabulary.
//! - Meter changes take effect at the next bar line, so bars are always whole and
//!   the decoder can place every onset exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DECODED_TICKS_PER_BEAT;
use crate::midi::{Note, Part, Score, TempoChange, TimeSignature};

/// Metronome markings: the tempo bins.
pub const TEMPO_MARKINGS: [u16; 39] = [
    40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 63, 66, 69, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112,
    116, 120, 126, 132, 138, 144, 152, 160, 168, 176, 184, 192, 200, 208,
];
const VELOCITY_BIN: u8 = 4;
const DRUM_CHANNEL: u8 = 9;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsConfig {
    /// Grid positions per beat (quarter note). 24 holds 32nds and 16th triplets.
    pub grid_per_beat: u16,
    /// Largest duration one `Dur` token holds, in grid units; longer notes use several.
    pub max_duration_units: u16,
    /// Emit `Prog_p` before each note (multi-instrument corpora).
    pub with_program: bool,
    /// Emit `Tempo_b` where the tempo changes.
    pub with_tempo: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { grid_per_beat: 24, max_duration_units: 96, with_program: false, with_tempo: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Token {
    Bar,
    TimeSig(u8, u8),
    Pos(u16),
    Tempo(u16),
    Prog(u8),
    Pitch(u8),
    Vel(u8),
    Dur(u16),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Bar => f.write_str("Bar"),
            Token::TimeSig(n, d) => write!(f, "TimeSig_{n}/{d}"),
            Token::Pos(p) => write!(f, "Pos_{p}"),
            Token::Tempo(b) => write!(f, "Tempo_{b}"),
            Token::Prog(p) => write!(f, "Prog_{p}"),
            Token::Pitch(p) => write!(f, "Pitch_{p}"),
            Token::Vel(v) => write!(f, "Vel_{v}"),
            Token::Dur(d) => write!(f, "Dur_{d}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an events token: `{0}`")]
pub struct UnknownToken(pub String);

impl FromStr for Token {
    type Err = UnknownToken;

    fn from_str(text: &str) -> Result<Token, UnknownToken> {
        let unknown = || UnknownToken(text.to_owned());
        if text == "Bar" {
            return Ok(Token::Bar);
        }
        let (kind, value) = text.split_once('_').ok_or_else(unknown)?;
        let number = |value: &str| value.parse::<u16>().map_err(|_| unknown());
        let byte = |value: &str| value.parse::<u8>().map_err(|_| unknown());
        Ok(match kind {
            "TimeSig" => {
                let (n, d) = value.split_once('/').ok_or_else(unknown)?;
                Token::TimeSig(byte(n)?, byte(d)?)
            }
            "Pos" => Token::Pos(number(value)?),
            "Tempo" => Token::Tempo(number(value)?),
            "Prog" => Token::Prog(byte(value)?),
            "Pitch" => Token::Pitch(byte(value)?),
            "Vel" => Token::Vel(byte(value)?),
            "Dur" => Token::Dur(number(value)?),
            _ => return Err(unknown()),
        })
    }
}

/// Velocity bins of 4: 1..=3 → 2, 88..=91 → 90, 124..=127 → 126.
pub fn velocity_bin(velocity: u8) -> u8 {
    (velocity / VELOCITY_BIN) * VELOCITY_BIN + VELOCITY_BIN / 2
}

/// The nearest metronome marking; halfway between two, the slower.
pub fn tempo_marking(bpm: f64) -> u16 {
    let above = TEMPO_MARKINGS.partition_point(|&marking| f64::from(marking) < bpm);
    let candidates = [above.checked_sub(1), Some(above).filter(|&i| i < TEMPO_MARKINGS.len())];
    let distance = |index: usize| (f64::from(TEMPO_MARKINGS[index]) - bpm).abs();
    let nearest =
        candidates.into_iter().flatten().reduce(|a, b| if distance(b) < distance(a) { b } else { a });
    TEMPO_MARKINGS[nearest.expect("the marking table is not empty")]
}

/// Bar length in grid units; meters whose bar is not a whole number of units
/// (denominators beyond 16) fall back to 4/4.
fn bar_units(numerator: u8, denominator: u8, grid_per_beat: u16) -> u64 {
    let units = u64::from(numerator) * u64::from(grid_per_beat) * 4;
    if denominator == 0 || units % u64::from(denominator) != 0 {
        return 4 * u64::from(grid_per_beat);
    }
    (units / u64::from(denominator)).max(1)
}

struct GridNote {
    onset: u64,
    duration: u64,
    pitch: u8,
    velocity: u8,
    program: u8,
}

pub fn encode(score: &Score, config: &EventsConfig) -> Vec<Token> {
    let grid = u64::from(config.grid_per_beat);
    let tpb = u64::from(score.ticks_per_beat.max(1));
    let to_units = |tick: u64| (tick * grid + tpb / 2) / tpb;
    let mut notes: Vec<GridNote> = score
        .parts
        .iter()
        .filter(|part| !part.is_drum)
        // Without program tokens, every part is one instrument.
        .flat_map(|part| {
            part.notes.iter().map(move |note| (if config.with_program { part.program } else { 0 }, note))
        })
        .map(|(program, note)| {
            let onset = to_units(note.start);
            let duration = to_units(note.end()).saturating_sub(onset).max(1);
            GridNote { onset, duration, pitch: note.pitch, velocity: note.velocity, program }
        })
        .collect();
    notes.sort_by_key(|n| (n.onset, n.program, n.pitch, std::cmp::Reverse(n.duration)));
    // One note per (onset, program, pitch): the longest.
    notes.dedup_by_key(|n| (n.onset, n.program, n.pitch));
    let Some(last_onset) = notes.last().map(|n| n.onset) else { return Vec::new() };

    let meters: Vec<(u64, u8, u8)> =
        score.time_signatures.iter().map(|ts| (to_units(ts.tick), ts.numerator, ts.denominator)).collect();
    // (grid unit, marking): the last change per unit, and only where the marking
    // changes, so a file of 500,000 tempo events costs the markings it really has.
    let mut tempos: Vec<(u64, u16)> = Vec::new();
    if config.with_tempo {
        for change in &score.tempos {
            let (unit, marking) = (to_units(change.tick), tempo_marking(change.bpm()));
            if tempos.last().is_some_and(|&(last, _)| last == unit) {
                tempos.pop();
            }
            if tempos.last().is_none_or(|&(_, last)| last != marking) {
                tempos.push((unit, marking));
            }
        }
    }
    let mut next_tempo = tempos.iter().peekable();

    let mut tokens = Vec::with_capacity(notes.len() * 4);
    let (mut meter, mut meter_index) = ((4u8, 4u8), 0usize);
    let mut announced_meter = None;
    let mut announced_tempo = None;
    let mut next_note = notes.iter().peekable();
    let mut bar_start = 0u64;
    while bar_start <= last_onset {
        // A meter change applies from the first bar line at or after it.
        while let Some(&(_, n, d)) = meters.get(meter_index).filter(|m| m.0 <= bar_start) {
            meter = (n, d);
            meter_index += 1;
        }
        let bar_end = bar_start + bar_units(meter.0, meter.1, config.grid_per_beat);
        tokens.push(Token::Bar);
        if announced_meter != Some(meter) {
            tokens.push(Token::TimeSig(meter.0, meter.1));
            announced_meter = Some(meter);
        }
        let mut positions: BTreeMap<u64, Vec<Token>> = BTreeMap::new();
        while let Some(&(tick, marking)) = next_tempo.next_if(|&&(tick, _)| tick < bar_end) {
            if announced_tempo != Some(marking) {
                positions.entry(tick).or_default().push(Token::Tempo(marking));
                announced_tempo = Some(marking);
            }
        }
        while let Some(note) = next_note.next_if(|note| note.onset < bar_end) {
            let slot = positions.entry(note.onset).or_default();
            if config.with_program {
                slot.push(Token::Prog(note.program));
            }
            slot.push(Token::Pitch(note.pitch));
            slot.push(Token::Vel(velocity_bin(note.velocity)));
            let mut left = note.duration;
            while left > 0 {
                let step = left.min(u64::from(config.max_duration_units.max(1)));
                slot.push(Token::Dur(step as u16));
                left -= step;
            }
        }
        for (tick, slot) in positions {
            tokens.push(Token::Pos((tick - bar_start) as u16));
            tokens.extend(slot);
        }
        bar_start = bar_end;
    }
    tokens
}

/// Rebuilds a score; out-of-grammar tokens (a `Dur` with no note, say) are skipped.
pub fn decode(tokens: &[Token], config: &EventsConfig) -> Score {
    let unit = u64::from(DECODED_TICKS_PER_BEAT) / u64::from(config.grid_per_beat.max(1));
    let mut decoder = Decoder::default();
    for &token in tokens {
        decoder.step(token, config.grid_per_beat);
    }
    decoder.finish_note();

    let mut by_program: BTreeMap<u8, Vec<Note>> = BTreeMap::new();
    for (program, note) in decoder.notes {
        let scaled = Note { start: note.start * unit, duration: note.duration * unit, ..note };
        by_program.entry(program).or_default().push(scaled);
    }
    let channels = (0u8..16).filter(|&channel| channel != DRUM_CHANNEL);
    let parts = by_program
        .into_iter()
        .zip(channels.cycle())
        .map(|((program, mut notes), channel)| {
            notes.sort_by_key(|n| (n.start, n.pitch));
            Part { name: None, program, channel, is_drum: false, notes }
        })
        .collect();
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

#[derive(Default)]
struct Decoder {
    /// Start of the current bar and its length, in grid units; None before the first bar.
    bar: Option<(u64, u64)>,
    meter: Option<(u8, u8)>,
    position: Option<u64>,
    program: u8,
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
            }
            Token::TimeSig(n, d) => {
                if let Some((start, _)) = self.bar {
                    self.meter = Some((n, d));
                    self.bar = Some((start, bar_units(n, d, grid_per_beat)));
                    self.meters.push((start, n, d));
                }
            }
            Token::Pos(p) => self.position = self.bar.map(|(start, _)| start + u64::from(p)),
            Token::Tempo(bpm) if bpm > 0 => {
                if let Some(at) = self.position {
                    self.tempos.insert(at, bpm);
                }
            }
            Token::Prog(program) => self.program = program,
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
            Token::Tempo(_) | Token::Pitch(_) => {}
        }
    }

    fn finish_note(&mut self) {
        if let (Some((pitch, velocity, duration)), Some(start)) = (self.pending.take(), self.position)
            && duration > 0
        {
            self.notes.push((self.program, Note { pitch, velocity, start, duration }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tokens: &[Token]) -> Vec<String> {
        tokens.iter().map(ToString::to_string).collect()
    }

    fn part(program: u8, channel: u8, notes: &[(u8, u8, u64, u64)]) -> Part {
        let notes =
            notes.iter().map(|&(pitch, velocity, start, duration)| Note { pitch, velocity, start, duration });
        Part { name: None, program, channel, is_drum: false, notes: notes.collect() }
    }

    fn score(parts: Vec<Part>, time_signatures: Vec<TimeSignature>, tempos: Vec<TempoChange>) -> Score {
        Score { ticks_per_beat: 480, tempos, time_signatures, key_signatures: vec![], parts }
    }

    #[test]
    fn encodes_bars_positions_and_notes() {
        // 3/4 at 96 bpm: D4 quarter on beat 1, F4+A4 dotted half tied over the bar.
        let piece = score(
            vec![part(0, 0, &[(62, 90, 0, 480), (65, 70, 480, 1440), (69, 70, 480, 1440)])],
            vec![TimeSignature { tick: 0, numerator: 3, denominator: 4 }],
            vec![TempoChange { tick: 0, micros_per_beat: 625_000 }],
        );
        let tokens = encode(&piece, &EventsConfig::default());
        assert_eq!(
            names(&tokens),
            [
                "Bar",
                "TimeSig_3/4",
                "Pos_0",
                "Tempo_96",
                "Pitch_62",
                "Vel_90",
                "Dur_24",
                "Pos_24",
                "Pitch_65",
                "Vel_70",
                "Dur_72",
                "Pitch_69",
                "Vel_70",
                "Dur_72"
            ]
        );
        for token in &tokens {
            assert_eq!(token.to_string().parse::<Token>().unwrap(), *token);
        }
    }

    #[test]
    fn a_score_on_the_grid_decodes_exactly() {
        // Onsets and durations on the 1/24-beat grid (20 ticks), velocities on bin
        // centres, a meter change at a bar line, a tempo marking, two instruments,
        // a note longer than one Dur token, and an empty bar.
        let piece = score(
            vec![
                part(0, 0, &[(60, 90, 0, 40), (64, 90, 40, 440), (67, 126, 1920, 4800)]),
                part(40, 1, &[(72, 2, 120, 3720), (76, 50, 6720, 80)]),
            ],
            vec![
                TimeSignature { tick: 0, numerator: 4, denominator: 4 },
                TimeSignature { tick: 3840, numerator: 6, denominator: 8 },
            ],
            vec![
                TempoChange { tick: 0, micros_per_beat: 500_000 },
                TempoChange { tick: 1920, micros_per_beat: 750_000 },
            ],
        );
        let config = EventsConfig { with_program: true, ..EventsConfig::default() };
        let decoded = decode(&encode(&piece, &config), &config);
        assert_eq!(decoded, piece);
    }

    #[test]
    fn off_grid_notes_snap_to_the_nearest_position() {
        // 20 ticks per unit: 9 ticks snaps to 0, an end at 479 to 480.
        let piece = score(vec![part(0, 0, &[(60, 90, 9, 470)])], vec![], vec![]);
        let tokens = encode(&piece, &EventsConfig { with_tempo: false, ..EventsConfig::default() });
        assert_eq!(names(&tokens), ["Bar", "TimeSig_4/4", "Pos_0", "Pitch_60", "Vel_90", "Dur_24"]);
    }

    #[test]
    fn stray_tokens_are_skipped_when_decoding() {
        let tokens: Vec<Token> = [
            "Dur_12", "Pitch_60", "Bar", "Vel_90", "Pos_3", "Pitch_61", "Vel_90", "Dur_6", "Dur_6",
            "Pitch_62",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let decoded = decode(&tokens, &EventsConfig::default());
        let notes = &decoded.parts[0].notes;
        assert_eq!(notes, &[Note { pitch: 61, velocity: 90, start: 60, duration: 240 }]);
        assert_eq!("Chord_5".parse::<Token>(), Err(UnknownToken("Chord_5".into())));
    }

    #[test]
    fn tempo_markings_bin_to_the_nearest() {
        assert_eq!(tempo_marking(120.0), 120);
        assert_eq!(tempo_marking(97.9), 96);
        assert_eq!(tempo_marking(1000.0), 208);
        assert_eq!(tempo_marking(41.0), 40, "halfway: the slower");
        for quarter in 0..1200 {
            let bpm = f64::from(quarter) / 4.0;
            let nearest = TEMPO_MARKINGS
                .iter()
                .min_by(|a, b| (f64::from(**a) - bpm).abs().total_cmp(&(f64::from(**b) - bpm).abs()));
            assert_eq!(tempo_marking(bpm), *nearest.unwrap(), "{bpm} bpm");
        }
        assert_eq!(velocity_bin(1), 2);
        assert_eq!(velocity_bin(127), 126);
    }
}
