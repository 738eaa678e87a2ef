//! `events`: fugue's default representation, REMI-like, keeping rhythm, dynamics,
//! polyphony, meter, tempo and, when asked, parts.
//!
//! A piece is a run of bars. Each bar opens with `Bar` (and `TimeSig_n/d` where the
//! meter changes); then, per onset position in the bar, `Pos_p` followed by an
//! optional `Tempo_b` and, per note, `[Prog_p] Pitch_p Vel_v Dur_d...`.
//!
//! With parts ([`EventsConfig::max_parts`] > 0), a header before the first bar
//! declares the piece's part table once, `Part_i [Drums] Prog_p [Name_n]` per part
//! in the file's order, and within a position the notes come grouped by part, each
//! group opened by its `Part_i`: `Pos_0 Part_0 Pitch_72 Vel_90 Dur_24 Part_1 ...`.
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
//! - Parts are declared once and referred to by index. A part is not a program:
//!   four voices that all sing, or a piano's two hands, are parts with one
//!   program. REMI+ (a `Prog` token per note, `with_program`) cannot tell them
//!   apart, and repeats the program on every note. Per-track streams (MMM: each
//!   bar, or the whole piece, written track after track) keep parts apart but put
//!   the notes of one instant far from each other, so the model sees harmony only
//!   through long-range memory, and a decoder can no longer count what sounds at a
//!   position. Part tokens in the time-ordered stream keep the vertical view and
//!   cost a few `Part_i` tokens (at most [`PART_LIMIT`] for the `fugue` preset)
//!   plus the corpus's programs and part names in the vocabulary. At every point
//!   the prefix says which part the next note is in ([`next_note_part`]), so a
//!   decoder can mask each part's range and polyphony; and the header says what
//!   each part is ([`declared_parts`]), so generation can choose the parts by
//!   writing the header itself.
//! - Names are tokens (first line, 23 bytes at most), so a model learns that a
//!   `Tenor` sings lower than an `Alto` whatever its index; the vocabulary grows
//!   with the corpus's distinct names, a few dozen for the Bach chorales.
//! - Without parts (`max_parts` 0, the default and what every model before parts
//!   was trained with) nothing changes: no header, drums left out, one stream.

mod decode;
mod parts;
mod tokens;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::decode::decode;
pub use self::parts::{
    CorpusPart, PART_LIMIT, PartSpec, corpus_parts, declared_parts, file_parts, layout, merge_part_tables,
    next_note_part,
};
pub use self::tokens::{PartName, Token, UnknownToken};
use crate::midi::Score;

/// Metronome markings: the tempo bins.
pub const TEMPO_MARKINGS: [u16; 39] = [
    40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 63, 66, 69, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112,
    116, 120, 126, 132, 138, 144, 152, 160, 168, 176, 184, 192, 200, 208,
];
const VELOCITY_BIN: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsConfig {
    /// Grid positions per beat (quarter note). 24 holds 32nds and 16th triplets.
    pub grid_per_beat: u16,
    /// Largest duration one `Dur` token holds, in grid units; longer notes use several.
    pub max_duration_units: u16,
    /// Emit `Prog_p` before each note (multi-instrument corpora without parts).
    pub with_program: bool,
    /// Emit `Tempo_b` where the tempo changes.
    pub with_tempo: bool,
    /// Parts a piece declares at most; 0 merges every part into one stream and
    /// leaves drums out (artifacts from before parts have none). With parts,
    /// programs live in the header and `with_program` does nothing.
    #[serde(default)]
    pub max_parts: u8,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            grid_per_beat: 24,
            max_duration_units: 96,
            with_program: false,
            with_tempo: true,
            max_parts: 0,
        }
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
pub fn bar_units(numerator: u8, denominator: u8, grid_per_beat: u16) -> u64 {
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
    /// The declared part (with parts) or the program (without) it sounds in.
    voice: u8,
}

pub fn encode(score: &Score, config: &EventsConfig) -> Vec<Token> {
    let grid = u64::from(config.grid_per_beat);
    let tpb = u64::from(score.ticks_per_beat.max(1));
    let to_units = |tick: u64| (tick * grid + tpb / 2) / tpb;
    let with_parts = config.max_parts > 0;
    let layout = with_parts.then(|| layout(&score.parts, config.max_parts));
    let mut notes: Vec<GridNote> = score
        .parts
        .iter()
        .zip(0..)
        .filter(|(part, _)| with_parts || !part.is_drum)
        .flat_map(|(part, index)| {
            let voice = match &layout {
                Some(layout) => layout.slot_of[index],
                // Without program tokens, every part is one instrument.
                None if config.with_program => part.program,
                None => 0,
            };
            part.notes.iter().map(move |note| (voice, note))
        })
        .map(|(voice, note)| {
            let onset = to_units(note.start);
            let duration = to_units(note.end()).saturating_sub(onset).max(1);
            GridNote { onset, duration, pitch: note.pitch, velocity: note.velocity, voice }
        })
        .collect();
    notes.sort_by_key(|n| (n.onset, n.voice, n.pitch, std::cmp::Reverse(n.duration)));
    // One note per (onset, voice, pitch): the longest.
    notes.dedup_by_key(|n| (n.onset, n.voice, n.pitch));
    let Some(last_onset) = notes.last().map(|n| n.onset) else { return Vec::new() };

    let mut tokens = Vec::with_capacity(notes.len() * 4);
    if let Some(layout) = &layout {
        tokens.extend(layout.declared.iter().zip(0..).flat_map(|(part, index)| part.header(index)));
    }
    let meters: Vec<(u64, u8, u8)> =
        score.time_signatures.iter().map(|ts| (to_units(ts.tick), ts.numerator, ts.denominator)).collect();
    let tempos = if config.with_tempo { tempo_markings(score, &to_units) } else { Vec::new() };
    let mut next_tempo = tempos.iter().peekable();

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
        let mut previous: Option<&GridNote> = None;
        while let Some(note) = next_note.next_if(|note| note.onset < bar_end) {
            let slot = positions.entry(note.onset).or_default();
            let opens_group = previous.is_none_or(|p| (p.onset, p.voice) != (note.onset, note.voice));
            if with_parts && opens_group {
                slot.push(Token::Part(note.voice));
            } else if !with_parts && config.with_program {
                slot.push(Token::Prog(note.voice));
            }
            slot.push(Token::Pitch(note.pitch));
            slot.push(Token::Vel(velocity_bin(note.velocity)));
            let mut left = note.duration;
            while left > 0 {
                let step = left.min(u64::from(config.max_duration_units.max(1)));
                slot.push(Token::Dur(step as u16));
                left -= step;
            }
            previous = Some(note);
        }
        for (tick, slot) in positions {
            tokens.push(Token::Pos((tick - bar_start) as u16));
            tokens.extend(slot);
        }
        bar_start = bar_end;
    }
    tokens
}

/// (grid unit, marking): the last change per unit, and only where the marking
/// changes, so a file of 500,000 tempo events costs the markings it really has.
fn tempo_markings(score: &Score, to_units: &dyn Fn(u64) -> u64) -> Vec<(u64, u16)> {
    let mut tempos: Vec<(u64, u16)> = Vec::new();
    for change in &score.tempos {
        let (unit, marking) = (to_units(change.tick), tempo_marking(change.bpm()));
        if tempos.last().is_some_and(|&(last, _)| last == unit) {
            tempos.pop();
        }
        if tempos.last().is_none_or(|&(_, last)| last != marking) {
            tempos.push((unit, marking));
        }
    }
    tempos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{Note, Part, TempoChange, TimeSignature};

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

    fn named(name: &str, program: u8, channel: u8, notes: &[(u8, u8, u64, u64)]) -> Part {
        Part { name: Some(name.to_owned()), is_drum: channel == 9, ..part(program, channel, notes) }
    }

    const WITH_PARTS: EventsConfig = EventsConfig {
        grid_per_beat: 24,
        max_duration_units: 96,
        with_program: false,
        with_tempo: true,
        max_parts: PART_LIMIT,
    };

    #[test]
    fn parts_are_declared_once_and_named_at_each_position() {
        // Two voices that both sing (one program) in unison on beat 1, and drums.
        let piece = score(
            vec![
                named("Soprano", 52, 0, &[(67, 90, 0, 480), (69, 90, 480, 480)]),
                named("Alto", 52, 0, &[(67, 90, 0, 960)]),
                named("Kit", 0, 9, &[(36, 100, 0, 120)]),
            ],
            vec![],
            vec![],
        );
        assert_eq!(
            names(&encode(&piece, &WITH_PARTS)),
            [
                "Part_0",
                "Prog_52",
                "Name_Soprano",
                "Part_1",
                "Prog_52",
                "Name_Alto",
                "Part_2",
                "Drums",
                "Prog_0",
                "Name_Kit",
                "Bar",
                "TimeSig_4/4",
                "Pos_0",
                "Part_0",
                "Pitch_67",
                "Vel_90",
                "Dur_24",
                "Part_1",
                "Pitch_67",
                "Vel_90",
                "Dur_48",
                "Part_2",
                "Pitch_36",
                "Vel_102",
                "Dur_6",
                "Pos_24",
                "Part_0",
                "Pitch_69",
                "Vel_90",
                "Dur_24"
            ]
        );
        // Without parts, as before: drums left out, the unison merged.
        assert_eq!(
            names(&encode(&piece, &EventsConfig::default())),
            [
                "Bar",
                "TimeSig_4/4",
                "Pos_0",
                "Pitch_67",
                "Vel_90",
                "Dur_48",
                "Pos_24",
                "Pitch_69",
                "Vel_90",
                "Dur_24"
            ]
        );
    }

    #[test]
    fn a_score_with_parts_decodes_exactly() {
        // Channels as `assign_channels` gives them: pitched parts in order skipping
        // 9, drums on 9; an unnamed part stays unnamed; the hands share program 0;
        // the bass plays two positions running with no other part between.
        let piece = score(
            vec![
                named("Right hand", 0, 0, &[(72, 90, 0, 240), (76, 90, 240, 240), (72, 50, 1920, 3840)]),
                named("Left hand", 0, 1, &[(48, 70, 0, 1920), (72, 70, 1920, 480)]),
                named("Drums", 0, 9, &[(36, 126, 0, 20), (42, 90, 0, 20), (36, 126, 960, 20)]),
                part(33, 2, &[(36, 90, 960, 480), (38, 90, 1440, 480)]),
            ],
            vec![TimeSignature { tick: 0, numerator: 4, denominator: 4 }],
            vec![TempoChange { tick: 0, micros_per_beat: 500_000 }],
        );
        let tokens = encode(&piece, &WITH_PARTS);
        assert_eq!(decode(&tokens, &WITH_PARTS), piece);
        assert_eq!(declared_parts(&tokens), piece.parts.iter().map(PartSpec::of).collect::<Vec<_>>());
    }

    #[test]
    fn without_a_part_token_a_note_has_no_part_and_is_skipped() {
        let tokens: Vec<Token> = [
            "Part_0", "Prog_40", "Bar", "Pos_0", "Pitch_60", "Vel_90", "Dur_6", "Part_2", "Pitch_62",
            "Vel_90", "Dur_6",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let decoded = decode(&tokens, &WITH_PARTS);
        let summary: Vec<_> = decoded.parts.iter().map(|p| (p.program, p.channel, p.notes.len())).collect();
        assert_eq!(summary, [(40, 0, 0), (0, 1, 0), (0, 2, 1)], "declared, gap, used undeclared");
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
