//! General MIDI: the names of its 128 programs, for track names people recognise,
//! and its channels: drums on channel 10.

use super::score::Part;

/// Channel 10 (index 9): General MIDI's drum channel.
pub const DRUM_CHANNEL: u8 = 9;

/// The General MIDI Level 1 sound set, by program number (0-based).
const PROGRAM_NAMES: [&str; 128] = [
    "Acoustic Grand Piano",
    "Bright Acoustic Piano",
    "Electric Grand Piano",
    "Honky-tonk Piano",
    "Electric Piano 1",
    "Electric Piano 2",
    "Harpsichord",
    "Clavinet",
    "Celesta",
    "Glockenspiel",
    "Music Box",
    "Vibraphone",
    "Marimba",
    "Xylophone",
    "Tubular Bells",
    "Dulcimer",
    "Drawbar Organ",
    "Percussive Organ",
    "Rock Organ",
    "Church Organ",
    "Reed Organ",
    "Accordion",
    "Harmonica",
    "Tango Accordion",
    "Acoustic Guitar (nylon)",
    "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)",
    "Electric Guitar (clean)",
    "Electric Guitar (muted)",
    "Overdriven Guitar",
    "Distortion Guitar",
    "Guitar Harmonics",
    "Acoustic Bass",
    "Electric Bass (finger)",
    "Electric Bass (pick)",
    "Fretless Bass",
    "Slap Bass 1",
    "Slap Bass 2",
    "Synth Bass 1",
    "Synth Bass 2",
    "Violin",
    "Viola",
    "Cello",
    "Contrabass",
    "Tremolo Strings",
    "Pizzicato Strings",
    "Orchestral Harp",
    "Timpani",
    "String Ensemble 1",
    "String Ensemble 2",
    "Synth Strings 1",
    "Synth Strings 2",
    "Choir Aahs",
    "Voice Oohs",
    "Synth Voice",
    "Orchestra Hit",
    "Trumpet",
    "Trombone",
    "Tuba",
    "Muted Trumpet",
    "French Horn",
    "Brass Section",
    "Synth Brass 1",
    "Synth Brass 2",
    "Soprano Sax",
    "Alto Sax",
    "Tenor Sax",
    "Baritone Sax",
    "Oboe",
    "English Horn",
    "Bassoon",
    "Clarinet",
    "Piccolo",
    "Flute",
    "Recorder",
    "Pan Flute",
    "Blown Bottle",
    "Shakuhachi",
    "Whistle",
    "Ocarina",
    "Lead 1 (square)",
    "Lead 2 (sawtooth)",
    "Lead 3 (calliope)",
    "Lead 4 (chiff)",
    "Lead 5 (charang)",
    "Lead 6 (voice)",
    "Lead 7 (fifths)",
    "Lead 8 (bass + lead)",
    "Pad 1 (new age)",
    "Pad 2 (warm)",
    "Pad 3 (polysynth)",
    "Pad 4 (choir)",
    "Pad 5 (bowed)",
    "Pad 6 (metallic)",
    "Pad 7 (halo)",
    "Pad 8 (sweep)",
    "FX 1 (rain)",
    "FX 2 (soundtrack)",
    "FX 3 (crystal)",
    "FX 4 (atmosphere)",
    "FX 5 (brightness)",
    "FX 6 (goblins)",
    "FX 7 (echoes)",
    "FX 8 (sci-fi)",
    "Sitar",
    "Banjo",
    "Shamisen",
    "Koto",
    "Kalimba",
    "Bagpipe",
    "Fiddle",
    "Shanai",
    "Tinkle Bell",
    "Agogo",
    "Steel Drums",
    "Woodblock",
    "Taiko Drum",
    "Melodic Tom",
    "Synth Drum",
    "Reverse Cymbal",
    "Guitar Fret Noise",
    "Breath Noise",
    "Seashore",
    "Bird Tweet",
    "Telephone Ring",
    "Helicopter",
    "Applause",
    "Gunshot",
];

/// The General MIDI name of `program` (0..=127; larger numbers are clamped).
pub fn program_name(program: u8) -> &'static str {
    PROGRAM_NAMES[usize::from(program.min(127))]
}

/// Gives each part a channel the General MIDI way: drums on channel 10 (index 9),
/// pitched parts each on their own of the other fifteen, in order.
///
/// From the sixteenth pitched part on there is no channel left, and a channel
/// plays one program at a time, so a part shares the channel of the first part
/// with its program, failing that of the first with an instrument of its family
/// (GM's groups of eight: pianos, organs, guitars, basses, strings, ...), failing
/// that channel 16 (index 15). Where programs share a channel, the writer's program
/// changes switch it at each onset, so notes that overlap across the switch sound
/// with the later program.
pub fn assign_channels(parts: &mut [Part]) {
    let mut free = (0u8..16).filter(|&channel| channel != DRUM_CHANNEL);
    let mut pitched: Vec<(u8, u8)> = Vec::new();
    for part in parts {
        if part.is_drum {
            part.channel = DRUM_CHANNEL;
            continue;
        }
        let program = part.program;
        let shared = || {
            let same_program = pitched.iter().find(|&&(p, _)| p == program);
            let same_family = pitched.iter().find(|&&(p, _)| p / 8 == program / 8);
            same_program.or(same_family).map_or(15, |&(_, channel)| channel)
        };
        part.channel = free.next().unwrap_or_else(shared);
        pitched.push((program, part.channel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::Note;

    #[test]
    fn drums_take_channel_ten_and_the_rest_share_by_program() {
        let part = |program: u8, drums: bool| {
            let note = Note { pitch: 60, velocity: 90, start: 0, duration: 1 };
            Part { name: None, program, channel: 3, is_drum: drums, notes: vec![note] }
        };
        // 17 pitched parts (programs 40, 41, ... 56) and a drum kit in the middle.
        let mut parts: Vec<Part> = (40..57).map(|program| part(program, false)).collect();
        parts.insert(4, part(0, true));
        parts.push(part(44, false));
        parts.push(part(80, false));
        assign_channels(&mut parts);
        let channels: Vec<u8> = parts.iter().map(|p| p.channel).collect();
        assert_eq!(channels[..16], [0, 1, 2, 3, 9, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]);
        // Past fifteen pitched parts: program 55 joins its family (48..=55: 48, on
        // channel 8), 56 has no family yet and takes 15, 44 its own program's
        // channel, 80 nothing of its own: 15.
        assert_eq!(channels[16..], [8, 15, 4, 15]);
    }

    #[test]
    fn names_follow_the_general_midi_table() {
        assert_eq!(program_name(0), "Acoustic Grand Piano");
        assert_eq!(program_name(40), "Violin");
        assert_eq!(program_name(52), "Choir Aahs");
        assert_eq!(program_name(127), "Gunshot");
    }
}
