//! Representations: how a [`Score`](crate::midi::Score) becomes a training sequence
//! and back. Each keeps its configuration (and, for token representations, its
//! vocabulary) so that a model can be saved with exactly what it was trained on.

pub mod events;
pub mod melody_chords;
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
}
