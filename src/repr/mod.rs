//! Representations: how a [`Score`](crate::midi::Score) becomes a training sequence
//! and back. Each keeps its configuration (and, for token representations, its
//! vocabulary) so that a model can be saved with exactly what it was trained on.

pub mod events;
pub mod melody_chords;
pub mod music21;
pub mod note_chord;
pub mod pianoroll;
mod vocab;

pub use vocab::Vocabulary;

/// Ticks per beat of the scores that decoders build: divisible by 2, 3, 4, 8, 12
/// and 16, so every supported grid lands on whole ticks.
pub const DECODED_TICKS_PER_BEAT: u16 = 480;

/// Names a pitch the way the tutorials' tokens do: `C4` is MIDI 60, sharps only.
pub fn pitch_name(pitch: u8) -> String {
    const NAMES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
    let octave = i16::from(pitch / 12) - 1;
    format!("{}{octave}", NAMES[usize::from(pitch % 12)])
}

/// The pitch class of a note letter, `C` (0) to `B` (11).
pub fn letter_pitch_class(letter: char) -> Option<i16> {
    let class = match letter {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    Some(class)
}

/// Parses a pitch name such as `G2`, `F#3`, `Bb4` or `B-4` (music21's flat) back to
/// MIDI. A bare `-1` is the octave below octave 0, as [`pitch_name`] writes it.
pub fn parse_pitch_name(name: &str) -> Option<u8> {
    let mut chars = name.chars();
    let base = letter_pitch_class(chars.next()?)?;
    let rest = chars.as_str();
    let (shift, octave) = if rest == "-1" {
        (0, rest)
    } else if let Some(octave) = rest.strip_prefix('#') {
        (1, octave)
    } else if let Some(octave) = rest.strip_prefix('-').or_else(|| rest.strip_prefix('b')) {
        (-1, octave)
    } else {
        (0, rest)
    };
    let octave: i16 = octave.parse().ok()?;
    u8::try_from((octave + 1) * 12 + base + shift).ok().filter(|pitch| *pitch <= 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pitch_names_round_trip_over_the_midi_range() {
        for pitch in 0..=127 {
            assert_eq!(parse_pitch_name(&pitch_name(pitch)), Some(pitch), "{}", pitch_name(pitch));
        }
        assert_eq!(pitch_name(60), "C4");
        assert_eq!(pitch_name(43), "G2");
        assert_eq!(parse_pitch_name("B-4"), Some(70));
        assert_eq!(parse_pitch_name("H4"), None);
        assert_eq!(parse_pitch_name("G#9"), None); // 128: beyond MIDI
    }

    /// The largest score the reader lets through: 200,000 notes over 40,000 beats,
    /// sounding for 2,000,000 beats in all, in bars of 1/16 with 100,000 tempo
    /// changes. Each representation must stay within the README's numbers.
    #[test]
    fn the_largest_readable_score_expands_within_the_documented_bounds() {
        use crate::midi::{
            MAX_BEATS, MAX_NOTES_PER_FILE, MAX_SOUNDING_BEATS, Note, Part, Score, TempoChange, TimeSignature,
        };
        let tpb = 96u64;
        let end = MAX_BEATS as u64 * tpb;
        let notes_count = MAX_NOTES_PER_FILE as u64;
        let each = (MAX_SOUNDING_BEATS as u64 / notes_count) * tpb;
        let notes: Vec<Note> = (0..notes_count)
            .map(|i| {
                let start = i * end / notes_count;
                Note { pitch: 21 + (i % 88) as u8, velocity: 90, start, duration: each.min(end - start) }
            })
            .collect();
        let mut score = Score::of_parts(tpb as u16, vec![Part::new(0, 0, notes)]);
        score.time_signatures = vec![TimeSignature { tick: 0, numerator: 1, denominator: 16 }];
        score.tempos = (0..100_000u64)
            .map(|i| TempoChange { tick: i * 37, micros_per_beat: 300_000 + (i % 7) as u32 * 100_000 })
            .collect();
        assert_eq!(score.end_tick(), end);

        assert!(pianoroll::encode(&score, pianoroll::Grid::Sixteenth).len() <= 160_000);
        assert!(note_chord::encode(&score, &note_chord::NoteChordConfig::default()).len() <= 80_001);
        let config = events::EventsConfig { with_program: true, ..events::EventsConfig::default() };
        let tokens = events::encode(&score, &config).len();
        assert!(tokens <= 3_100_000, "{tokens} events tokens");
        // With parts, a `Part` token per part and position, one at most per note.
        let config =
            events::EventsConfig { max_parts: events::PART_LIMIT, ..events::EventsConfig::default() };
        let tokens = events::encode(&score, &config).len();
        assert!(tokens <= 3_300_000, "{tokens} events tokens with parts");
    }
}
