//! Fuzzes `fugue::midi::read`: it must never panic, and whatever it accepts must
//! satisfy the Score invariants and survive write → read unchanged.

#![no_main]

use fugue::midi::{read, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(score) = read(data) else { return };
    for (index, part) in score.parts.iter().enumerate() {
        for note in &part.notes {
            assert!(note.duration >= 1, "part {index}: zero-length note {note:?}");
        }
        assert!(
            part.notes.is_sorted_by_key(|note| (note.start, note.pitch)),
            "part {index}: notes not sorted by (start, pitch)"
        );
    }
    let bytes = write(&score);
    let again = read(&bytes).expect("reading what fugue::midi::write wrote failed");
    assert_eq!(score, again, "write → read does not reproduce the score (left: first read, right: re-read)");
});
