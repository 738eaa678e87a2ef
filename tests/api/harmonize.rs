//! Harmonizing: a part the user brings comes back exactly, and the bundled
//! four-part chorale model writes the other voices around it.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::generate::{bundled, composed, generate, messages};
use crate::support::{error_body, shared_data};

/// The soprano of a chorale's first `bars` bars of 4/4, as the request's notes, and
/// the file cut there.
fn chorale_soprano(file: &str, bars: u64) -> (Vec<Value>, Vec<u8>) {
    let bytes = std::fs::read(shared_data("bach-chorales-midi").join(file)).unwrap();
    let mut score = fugue::midi::read(&bytes).unwrap();
    let end = bars * 4 * u64::from(score.ticks_per_beat);
    for part in &mut score.parts {
        part.notes.retain(|note| note.end() <= end);
        // Velocities the model's bins cannot say exactly come back exactly all the same.
        for (index, note) in part.notes.iter_mut().enumerate() {
            note.velocity = 41 + (index * 7 % 80) as u8;
        }
    }
    let soprano = score.parts.iter().find(|part| part.name.as_deref() == Some("Soprano")).unwrap();
    let beats = |ticks: u64| ticks as f64 / f64::from(score.ticks_per_beat);
    let notes = soprano
        .notes
        .iter()
        .map(|note| {
            json!({"pitch": note.pitch, "start_beat": beats(note.start), "duration_beats": beats(note.duration),
                "velocity": note.velocity})
        })
        .collect();
    (notes, fugue::midi::write(&score))
}

/// (pitch, onset, length, velocity) of notes, sorted.
fn notes_of(notes: &[Value]) -> Vec<(u64, String, String, u64)> {
    let mut kept: Vec<_> = notes
        .iter()
        .map(|n| {
            (
                n["pitch"].as_u64().unwrap(),
                format!("{:09.4}", n["start_beat"].as_f64().unwrap()),
                format!("{:09.4}", n["duration_beats"].as_f64().unwrap()),
                n["velocity"].as_u64().unwrap(),
            )
        })
        .collect();
    kept.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
    kept
}

fn in_part(piece: &Value, name: &str) -> Vec<Value> {
    piece["notes"].as_array().unwrap().iter().filter(|n| n["part"]["name"] == name).cloned().collect()
}

#[tokio::test]
async fn harmonizing_returns_the_given_notes_exactly_and_fills_the_other_parts() {
    let app = bundled(64).await;
    let (soprano, file) = chorale_soprano("bwv10.7.mid", 4);
    let given_end = soprano
        .iter()
        .map(|n| n["start_beat"].as_f64().unwrap() + n["duration_beats"].as_f64().unwrap())
        .fold(0.0, f64::max);
    for (decoding, seed) in [("forced", 1), ("forced", 2)] {
        let request =
            json!({"seed": seed, "given": {"part": "soprano", "notes": soprano, "decoding": decoding}});
        let piece = composed(&app, &request).await;
        assert_eq!(notes_of(&in_part(&piece, "Soprano")), notes_of(&soprano), "{decoding} {seed}");
        for voice in ["Alto", "Tenor", "Bass"] {
            let written = in_part(&piece, voice);
            assert!(written.len() >= soprano.len() / 2, "{decoding} {seed}: {voice} sings {}", written.len());
        }
        // The piece ends on the bar line at or after the soprano's end.
        let last_bar = (given_end / 4.0).ceil() * 4.0;
        let end = piece["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["start_beat"].as_f64().unwrap() + n["duration_beats"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(end <= last_bar + 1e-9 && end >= given_end, "ends at {end}, soprano at {given_end}");
        // The MIDI file's Soprano track holds the given notes.
        let midi = app.get(piece["midi_url"].as_str().unwrap()).await.bytes().await.unwrap();
        let read = fugue::midi::read(&midi).unwrap();
        let track = read.parts.iter().find(|part| part.name.as_deref() == Some("Soprano")).unwrap();
        assert_eq!(track.notes.len(), soprano.len());
    }

    // The same soprano from the file itself (track 0), and over the WebSocket, looking
    // ahead (the default).
    let from_file = json!({"seed": 1, "given": {"part": 0, "midi_base64":
        base64::engine::general_purpose::STANDARD.encode(&file), "track": 0}});
    let piece = composed(&app, &from_file).await;
    assert_eq!(notes_of(&in_part(&piece, "Soprano")), notes_of(&soprano));
    let streamed = messages(&app, &from_file).await;
    let end = streamed.last().unwrap();
    assert_eq!(end["type"], "end", "{end}");
    assert_eq!(notes_of(&in_part(&end["composition"], "Soprano")), notes_of(&soprano));
    assert_eq!(end["composition"]["notes"], piece["notes"], "the stream writes what REST does");
    let streamed: Vec<Value> = streamed
        .iter()
        .filter(|m| m["type"] == "notes")
        .flat_map(|m| m["notes"].as_array().unwrap().clone())
        .collect();
    assert_eq!(
        notes_of(&streamed).len(),
        piece["notes"].as_array().unwrap().len(),
        "every note is streamed once"
    );
}

#[tokio::test]
async fn a_given_part_that_is_too_long_absent_or_unknown_is_refused_naming_the_field() {
    let app = bundled(64).await;
    let note = |start: f64| json!({"pitch": 67, "start_beat": start, "duration_beats": 1});
    let cases = [
        (json!({"part": "soprano", "notes": [note(0.0), note(1030.0)]}), "given.notes"),
        (json!({"part": "oboe", "notes": [note(0.0)]}), "given.part"),
        (json!({"part": 7, "notes": [note(0.0)]}), "given.part"),
        (
            json!({"part": "soprano", "notes": [json!({"pitch": 5, "start_beat": 0, "duration_beats": 1})]}),
            "given.notes",
        ),
        (json!({"part": "soprano"}), "given"),
        (json!({"part": "soprano", "notes": [note(0.0)], "track": 1}), "given.track"),
    ];
    for (given, field) in cases {
        let response = generate(&app, &json!({"given": given})).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{given}");
        assert_eq!(error_body(response).await["error"]["details"]["field"], field, "{given}");
    }
    let (_, file) = chorale_soprano("bwv10.7.mid", 4);
    let missing_track = json!({"given": {"part": "bass", "track": 4,
        "midi_base64": base64::engine::general_purpose::STANDARD.encode(&file)}});
    let response = generate(&app, &missing_track).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(response).await["error"]["details"]["field"], "given.track");
    let with_length = json!({"length": {"notes": 8}, "given": {"part": "soprano", "notes": [note(0.0)]}});
    assert_eq!(error_body(generate(&app, &with_length).await).await["error"]["details"]["field"], "length");
    // Over the WebSocket, the same refusal.
    let too_long = json!({"given": {"part": "soprano", "notes": [note(0.0), note(1030.0)]}});
    let refused = messages(&app, &too_long).await;
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["error"]["details"]["field"], "given.notes");
}
