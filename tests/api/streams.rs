//! Endless, steerable realtime streams: the engine writes a realtime session only
//! a little ahead of its listener, so a steer is heard within that lookahead, and
//! an endless piece plays until the listener stops.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::generate::{bundled, generate, messages, open_stream};
use crate::support::error_body;

/// Reads the stream's messages for `wait`, returning the notes and other messages.
async fn read_for<S>(socket: &mut S, wait: Duration) -> (Vec<Value>, Vec<Value>)
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let (mut notes, mut others) = (Vec::new(), Vec::new());
    let until = Instant::now() + wait;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until.into(), socket.next()).await {
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "notes" {
                notes.extend(message["notes"].as_array().unwrap().iter().cloned());
            } else {
                others.push(message);
            }
        }
    }
    (notes, others)
}

#[tokio::test]
async fn an_endless_stream_plays_until_cancelled_and_controls_are_heard_within_the_lookahead() {
    let app = bundled(64).await;
    let before: Vec<Value> = app.get("/v1/compositions").await.json().await.unwrap();
    // Slow music (60 bpm): the engine writes it many times faster than it plays, so
    // only parking keeps it near its listener.
    let request = json!({"length": {"endless": true}, "pacing": "realtime", "tempo_bpm": 60, "seed": 2});
    let mut socket = open_stream(&app, &request).await;
    let (first, others) = read_for(&mut socket, Duration::from_secs(3)).await;
    assert_eq!(others[0]["type"], "start", "{others:?}");
    assert!(first.len() >= 4, "notes keep coming: {}", first.len());

    // A steer that is refused names its field, and the music plays on.
    socket
        .send(Message::Text(json!({"type": "control", "temperature": 9}).to_string().into()))
        .await
        .unwrap();
    let steered_at = Instant::now();
    socket
        .send(Message::Text(
            json!({"type": "control", "key": "C", "scale": "major", "pitch_range": [60, 72]})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let (later, others) = read_for(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0]["error"]["details"]["field"], "temperature");
    // The steer reaches the session at once; what was written before it is at most
    // the lookahead (1.5 s) ahead of the listener. Notes from 2.5 s after it obey it.
    let playing_at = |note: &Value| note["start_seconds"].as_f64().unwrap();
    let heard_from = playing_at(first.last().unwrap()) + steered_at.elapsed().as_secs_f64().min(0.1) + 2.5;
    let after: Vec<&Value> = later.iter().filter(|note| playing_at(note) >= heard_from).collect();
    assert!(after.len() >= 3, "{} notes after the steer took hold", after.len());
    for note in after {
        let pitch = note["pitch"].as_u64().unwrap();
        assert!((60..=72).contains(&pitch) && [0, 2, 4, 5, 7, 9, 11].contains(&(pitch % 12)), "{note}");
    }

    // Tempo and instrument too: from 60 to 240 bpm, the notes written after the
    // control are a quarter of a second per beat apart, and play on a violin.
    let control = json!({"type": "control", "tempo_bpm": 240, "program": 40});
    socket.send(Message::Text(control.to_string().into())).await.unwrap();
    let (faster, _) = read_for(&mut socket, Duration::from_secs(4)).await;
    let tail = &faster[faster.len() / 2..];
    assert!(tail.len() >= 4, "{} notes", tail.len());
    for pair in tail.windows(2) {
        let beats = pair[1]["start_beat"].as_f64().unwrap() - pair[0]["start_beat"].as_f64().unwrap();
        let seconds = playing_at(&pair[1]) - playing_at(&pair[0]);
        assert!((seconds - beats * 0.25).abs() < 1e-6, "{pair:?}");
    }
    assert!(tail.iter().all(|note| note["program"] == 40), "{tail:?}");

    // What admission reads was measured while it played.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let figure = |name: &str| {
        let line = format!("fugue_generate_load{{figure=\"{name}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    assert!(figure("listener_tokens_per_second") > 1.0, "{metrics}");
    assert_eq!(figure("listeners"), 1.0, "{metrics}");

    socket.send(Message::Text(json!({"type": "cancel"}).to_string().into())).await.unwrap();
    let (_, closing) = read_for(&mut socket, Duration::from_secs(5)).await;
    assert!(closing.iter().all(|m| m["type"] != "end"), "an endless stream stores nothing: {closing:?}");
    let after: Vec<Value> = app.get("/v1/compositions").await.json().await.unwrap();
    assert_eq!(after.len(), before.len());
}

#[tokio::test]
async fn a_new_key_reaches_every_part_and_a_part_control_sets_that_parts_instrument_and_range() {
    let app = bundled(64).await;
    let request = json!({"length": {"endless": true}, "pacing": "realtime", "tempo_bpm": 200, "seed": 3,
        "key": "C", "scale": "major"});
    let mut socket = open_stream(&app, &request).await;
    let (first, _) = read_for(&mut socket, Duration::from_millis(1500)).await;
    assert!(!first.is_empty());
    let part_of = |note: &Value| note["part"]["name"].as_str().unwrap_or_default().to_owned();
    let playing_at = |note: &Value| note["start_seconds"].as_f64().unwrap();
    let pitch_class = |note: &Value| note["pitch"].as_u64().unwrap() % 12;
    // The notes that play from 2.5 s after a control sent at `sent` (the lookahead
    // is 1.5 s), of those read after it.
    let heard = |before: &[Value], sent: Instant, later: Vec<Value>| {
        let from = playing_at(before.last().unwrap()) + sent.elapsed().as_secs_f64().min(0.1) + 2.5;
        later.into_iter().filter(|note| playing_at(note) >= from).collect::<Vec<Value>>()
    };

    // From C major to D major: every part takes the new key, sharps and all (the
    // parts do not keep the key they started in).
    let sent = Instant::now();
    socket.send(Message::Text(json!({"type": "control", "key": "D"}).to_string().into())).await.unwrap();
    // Six seconds, so that a loaded machine still plays enough notes to see the key.
    let (later, _) = read_for(&mut socket, Duration::from_secs(6)).await;
    let in_d = heard(&first, sent, later);
    assert!(in_d.len() >= 8, "{} notes after the control took hold", in_d.len());
    assert!(in_d.iter().all(|note| [2, 4, 6, 7, 9, 11, 1].contains(&pitch_class(note))), "{in_d:?}");
    let parts_with_sharps: std::collections::BTreeSet<String> =
        in_d.iter().filter(|note| [1, 6].contains(&pitch_class(note))).map(&part_of).collect();
    let heard_pitches: Vec<(String, u64)> =
        in_d.iter().map(|note| (part_of(note), note["pitch"].as_u64().unwrap())).collect();
    assert!(parts_with_sharps.len() >= 2, "F# or C# only in {parts_with_sharps:?}: {heard_pitches:?}");

    // A part the stream does not play, or a part's setting past its limit, is
    // refused by its field, and the music plays on.
    let unknown = json!({"type": "control", "parts": [{"name": "Descant", "program": 41}]});
    socket.send(Message::Text(unknown.to_string().into())).await.unwrap();
    let too_many = json!({"type": "control", "parts": [{"name": "alto", "max_polyphony": 17}]});
    socket.send(Message::Text(too_many.to_string().into())).await.unwrap();
    let control =
        json!({"type": "control", "parts": [{"name": "alto", "program": 41, "pitch_range": [62, 69]}]});
    let sent = Instant::now();
    socket.send(Message::Text(control.to_string().into())).await.unwrap();
    let (later, others) = read_for(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(others.len(), 2, "{others:?}");
    assert_eq!(others[0]["error"]["details"]["field"], "parts[0].name");
    assert!(others[0]["error"]["message"].as_str().unwrap().contains("Soprano, Alto"), "{others:?}");
    assert_eq!(others[1]["error"]["details"]["field"], "parts[0].max_polyphony", "{others:?}");

    // The alto plays a viola within its new range, still in D major; the other
    // parts keep their instruments.
    let after = heard(&in_d, sent, later);
    let altos: Vec<&Value> = after.iter().filter(|note| part_of(note) == "Alto").collect();
    assert!(altos.len() >= 3, "{} alto notes after the control took hold", altos.len());
    for alto in &altos {
        assert_eq!(alto["program"], 41, "{alto}");
        assert!((62..=69).contains(&alto["pitch"].as_u64().unwrap()), "{alto}");
        assert!([2, 4, 6, 7, 9, 11, 1].contains(&pitch_class(alto)), "{alto}");
    }
    for note in after.iter().filter(|note| part_of(note) != "Alto") {
        let before =
            first.iter().find(|earlier| part_of(earlier) == part_of(note)).expect("a part heard before");
        assert_eq!(note["program"], before["program"], "{note}");
    }
    socket.send(Message::Text(json!({"type": "cancel"}).to_string().into())).await.unwrap();
}

/// `start` lists the parts the stream plays, in order, named as its notes name
/// them (and as controls must), each with the program it starts on; a note's
/// `part.index` is its part's place in that list.
#[tokio::test]
async fn the_start_message_lists_the_parts_the_stream_plays_by_name_and_program() {
    let app = bundled(64).await;
    let request = json!({"length": {"notes": 24}, "seed": 4,
        "parts": [{"name": "bass", "program": 42}, {"name": "SOPRANO"}]});
    let received = messages(&app, &request).await;
    assert_eq!(received[0]["type"], "start", "{received:?}");
    let parts = &received[0]["parts"];
    assert_eq!(parts, &json!([{"name": "Bass", "program": 42}, {"name": "Soprano", "program": 0}]));
    let notes: Vec<&Value> = received
        .iter()
        .filter(|m| m["type"] == "notes")
        .flat_map(|m| m["notes"].as_array().unwrap())
        .collect();
    assert!(notes.len() >= 24, "{} notes", notes.len());
    for note in notes {
        let part = &parts[note["part"]["index"].as_u64().unwrap() as usize];
        assert_eq!((&note["part"]["name"], &note["program"]), (&part["name"], &part["program"]), "{note}");
    }
    // A model without parts plays none.
    let unparted =
        messages(&app, &json!({"model": "jsb-pianoroll", "length": {"notes": 8}, "seed": 4})).await;
    assert_eq!(unparted[0]["type"], "start", "{unparted:?}");
    assert_eq!(unparted[0]["parts"], json!([]));
}

#[tokio::test]
async fn an_endless_piece_is_refused_over_rest_and_without_realtime_pacing() {
    let app = bundled(64).await;
    let rest = generate(&app, &json!({"length": {"endless": true}, "pacing": "realtime"})).await;
    assert_eq!(rest.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(rest).await["error"]["details"]["field"], "length.endless");
    let fast = messages(&app, &json!({"length": {"endless": true}})).await;
    assert_eq!(fast[0]["error"]["details"]["field"], "length.endless");
    let untrue = messages(&app, &json!({"length": {"endless": false}, "pacing": "realtime"})).await;
    assert_eq!(untrue[0]["error"]["details"]["field"], "length.endless");
}

/// The bar line at or after every note of `notes` starts, in 4/4: where a piece
/// stopped after its last onset ends.
fn bar_line_after(notes: &[Value]) -> f64 {
    let last_onset = notes.iter().map(|note| note["start_beat"].as_f64().unwrap()).fold(0.0, f64::max);
    ((last_onset / 4.0).floor() + 1.0) * 4.0
}

#[tokio::test]
async fn stop_ends_the_piece_on_its_next_bar_line_and_stores_it() {
    let app = bundled(64).await;
    // Each is stopped while it streams: a fast piece of 2,000 notes takes over a
    // second to write whole on a fast machine, so it is stopped sooner.
    for (request, stop_after) in [
        (json!({"length": {"endless": true}, "pacing": "realtime", "tempo_bpm": 240, "seed": 5}), 1500),
        (json!({"length": {"notes": 2000}, "time_signature": [4, 4], "seed": 5}), 100),
    ] {
        let mut socket = open_stream(&app, &request).await;
        let (streamed, _) = read_for(&mut socket, Duration::from_millis(stop_after)).await;
        assert!(!streamed.is_empty(), "{request}");
        socket.send(Message::Text(json!({"type": "stop"}).to_string().into())).await.unwrap();
        let stopped_at = streamed.len();
        let (more, others) = read_for(&mut socket, Duration::from_secs(20)).await;
        let end =
            others.iter().find(|m| m["type"] == "end").unwrap_or_else(|| panic!("{request}: {others:?}"));
        let composition = &end["composition"];

        // Stored, with every note streamed (fewer than 64 bars: nothing cut off).
        let id = composition["composition_id"].as_str().unwrap();
        let stored: Value = app.get(&format!("/v1/compositions/{id}")).await.json().await.unwrap();
        let notes = stored["notes"].as_array().unwrap();
        let all: Vec<Value> = streamed.into_iter().chain(more).collect();
        assert_eq!(notes.len(), all.len(), "{request}");
        assert!(notes.len() < 2000, "{request}: stopped early");
        // It ended at the bar line after its last onset: no note rings past it, and
        // the notes that did when streamed are cut there.
        let line = bar_line_after(notes);
        for (kept, sent) in notes.iter().zip(&all) {
            let start = kept["start_beat"].as_f64().unwrap();
            let end = start + kept["duration_beats"].as_f64().unwrap();
            let sent_end = start + sent["duration_beats"].as_f64().unwrap();
            assert!(end <= line + 1e-9, "{request}: {kept} rings past the bar line at {line}");
            assert!((end - sent_end.min(line)).abs() < 1e-9, "{request}: {kept} against {sent}");
        }
        // The stop held from the first bar line it could: at most the notes of
        // one more bar were written after it, beyond the lookahead.
        let written_after = notes.len() - stopped_at;
        assert!(written_after < 200, "{request}: {written_after} notes after the stop");
    }
}

#[tokio::test]
async fn an_endless_session_keeps_its_memory_and_stores_only_its_last_bars() {
    // `fugue bench endless` streams 3,000 notes of one endless session (its clock
    // simulated), reading its own RSS at ten checkpoints, then stops it.
    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fugue"))
            .args(["bench", "endless", "--notes", "3000", "--json"])
            .current_dir(crate::support::project_path(""))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(summary["bars"].as_f64().unwrap() > 128.0, "{summary}");
    // The session kept only its last 64 bars, however long it played: the stored
    // piece is them, from its first beat.
    assert_eq!(summary["stored_bars"], 64.0, "{summary}");
    assert!(summary["stored_first_onset"].as_f64().unwrap() >= 0.0, "{summary}");
    // RSS after the first checkpoint (300 notes, models and buffers warm) stays
    // where it was: a tensor or a note list growing with every step would not.
    let rss: Vec<f64> = summary["rss_mb"].as_array().unwrap().iter().map(|mb| mb.as_f64().unwrap()).collect();
    let growth = rss.last().unwrap() - rss[1];
    assert!(growth < 2.0, "RSS grew by {growth:.2} MB over 2,700 notes: {rss:?}");
}
