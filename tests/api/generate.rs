//! Generation with the bundled models: REST, MIDI downloads, the WebSocket stream,
//! constraints, determinism under batching, admission and its queue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Options, TestApp, error_body, project_path, spawn_app};

pub async fn bundled(max_sessions_per_worker: usize) -> TestApp {
    spawn_app(Options { bundled_models: true, max_sessions_per_worker, ..Options::default() }).await
}

pub async fn generate(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/v1/generate")).json(body).send().await.unwrap()
}

pub async fn composed(app: &TestApp, body: &Value) -> Value {
    let response = generate(app, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// (onset, pitch) of every note, in that order: a piece in parts lists the notes
/// of one onset part by part, a MIDI reader by pitch.
fn pitches_and_onsets(notes: &Value) -> Vec<(String, u64)> {
    let mut notes: Vec<(String, u64)> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (format!("{:09.4}", n["start_beat"].as_f64().unwrap()), n["pitch"].as_u64().unwrap()))
        .collect();
    notes.sort();
    notes
}

#[tokio::test]
async fn a_composition_downloads_as_a_midi_file_with_the_same_notes() {
    let app = bundled(64).await;
    let response = generate(&app, &json!({"length": {"notes": 64}, "seed": 11})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let piece: Value = response.json().await.unwrap();
    assert_eq!(piece["model"], "default");
    assert_eq!(piece["seed"], 11);
    assert_eq!(piece["notes"].as_array().unwrap().len(), 64);
    assert_eq!(piece["stats"]["notes"], 64);
    assert_eq!(location, format!("/v1/compositions/{}", piece["composition_id"].as_str().unwrap()));

    let download = app.get(piece["midi_url"].as_str().unwrap()).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "audio/midi");
    let score = fugue::midi::read(&download.bytes().await.unwrap()).expect("fugue reads its own MIDI");
    let read = serde_json::to_value(fugue::generate::notes_of(&score)).unwrap();
    assert_eq!(pitches_and_onsets(&read), pitches_and_onsets(&piece["notes"]));

    let stored: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(stored, piece);
    let listed: Value = app.get("/v1/compositions").await.json().await.unwrap();
    assert_eq!(listed[0]["composition_id"], piece["composition_id"]);

    // The MIDI file straight away.
    let direct = app
        .client
        .post(app.url("/v1/generate"))
        .header("accept", "audio/midi")
        .json(&json!({"length": {"notes": 16}, "seed": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::CREATED);
    assert_eq!(direct.headers()["content-type"], "audio/midi");
    assert_eq!(fugue::midi::read(&direct.bytes().await.unwrap()).unwrap().note_count(), 16);
    assert_eq!(app.get("/v1/compositions/nope/midi").await.status(), StatusCode::NOT_FOUND);
    for limit in ["0", "501"] {
        let refused = app.get(&format!("/v1/compositions?limit={limit}")).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_body(refused).await["error"]["details"]["field"], "limit");
    }
    let one: Value = app.get("/v1/compositions?limit=1").await.json().await.unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn musical_controls_hold_on_every_note() {
    let app = bundled(64).await;
    let piece = composed(
        &app,
        &json!({"length": {"notes": 96}, "seed": 5, "temperature": 1.2, "key": "D", "scale": "minor",
                "pitch_range": [55, 79], "max_polyphony": 2, "tempo_bpm": 96, "time_signature": [3, 4],
                "program": 40}),
    )
    .await;
    let notes = piece["notes"].as_array().unwrap();
    assert!(notes.len() >= 96);
    let d_minor = [2, 4, 5, 7, 9, 10, 0];
    for note in notes {
        let pitch = note["pitch"].as_u64().unwrap();
        assert!((55..=79).contains(&pitch), "{note}");
        assert!(d_minor.contains(&(pitch % 12)), "{note}");
        assert_eq!(note["program"], 40);
        // 96 bpm: a beat lasts 0.625 s.
        let (beat, seconds) = (note["start_beat"].as_f64().unwrap(), note["start_seconds"].as_f64().unwrap());
        assert!((beat * 0.625 - seconds).abs() < 1e-6, "{note}");
    }
    for note in notes {
        let at = note["start_beat"].as_f64().unwrap();
        let sounding = notes
            .iter()
            .filter(|n| {
                let start = n["start_beat"].as_f64().unwrap();
                start <= at && at < start + n["duration_beats"].as_f64().unwrap() - 1e-9
            })
            .count();
        assert!(sounding <= 2, "{sounding} notes at beat {at}");
    }
    // Three-four time, ending on a bar line: no note rings past the bar line that
    // closes the bar of the last onset.
    let beats = |n: &Value, key: &str| n[key].as_f64().unwrap();
    let last_onset = notes.iter().map(|n| beats(n, "start_beat")).fold(0.0, f64::max);
    let closing_bar_line = ((last_onset / 3.0).floor() + 1.0) * 3.0;
    let end = notes.iter().map(|n| beats(n, "start_beat") + beats(n, "duration_beats")).fold(0.0, f64::max);
    let midi = app.get(piece["midi_url"].as_str().unwrap()).await.bytes().await.unwrap();
    let score = fugue::midi::read(&midi).unwrap();
    assert_eq!((score.time_signatures[0].numerator, score.time_signatures[0].denominator), (3, 4));
    assert!((score.tempos[0].bpm() - 96.0).abs() < 0.01);
    assert_eq!(score.parts[0].program, 40);
    assert!(
        end <= closing_bar_line + 1e-9,
        "a note rings to beat {end}, past the bar line at {closing_bar_line}"
    );
}

#[tokio::test]
async fn the_same_request_gives_the_same_notes_alone_and_among_many() {
    let app = bundled(64).await;
    let request = json!({"length": {"notes": 48}, "seed": 1234, "temperature": 1.0, "top_p": 0.95});
    let alone = composed(&app, &request).await;
    assert_eq!(alone["stats"]["peak_batch"], 1);

    let crowd = (0..12).map(|i| {
        let app = &app;
        async move { composed(app, &json!({"length": {"notes": 200}, "seed": i})).await }
    });
    let again = async {
        // Join while the crowd is being stepped.
        tokio::time::sleep(Duration::from_millis(100)).await;
        composed(&app, &request).await
    };
    let (crowd, among_many) = tokio::join!(futures_util::future::join_all(crowd), again);
    assert!(
        among_many["stats"]["peak_batch"].as_u64().unwrap() > 1,
        "it was batched: {}",
        among_many["stats"]
    );
    assert_eq!(among_many["notes"], alone["notes"], "same notes alone and among {} sessions", crowd.len());
    let seeds: Vec<&Value> = crowd.iter().map(|piece| &piece["notes"]).collect();
    assert!(seeds.windows(2).any(|pair| pair[0] != pair[1]), "different seeds, different music");
}

/// A generation stream's socket, as the tests' client holds it.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn open_stream(app: &TestApp, request: &Value) -> Socket {
    let url = format!("ws://{}/v1/generate/stream", app.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket opens");
    socket.send(Message::Text(request.to_string().into())).await.unwrap();
    socket
}

pub async fn messages(app: &TestApp, request: &Value) -> Vec<Value> {
    let mut socket = open_stream(app, request).await;
    let mut received = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(60), socket.next()).await.unwrap() {
        match message.unwrap() {
            Message::Text(text) => received.push(serde_json::from_str(&text).unwrap()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    received
}

#[tokio::test]
async fn the_websocket_streams_notes_as_they_are_sampled() {
    let app = bundled(64).await;
    let request = json!({"length": {"notes": 40}, "seed": 9});
    let received = messages(&app, &request).await;
    let parts = ["Soprano", "Alto", "Tenor", "Bass"].map(|name| json!({"name": name, "program": 0}));
    assert_eq!(received[0], json!({"type": "start", "model": "default", "seed": 9, "parts": parts}));
    let end = received.last().unwrap();
    assert_eq!(end["type"], "end");
    let streamed: Vec<Value> = received
        .iter()
        .filter(|m| m["type"] == "notes")
        .flat_map(|m| m["notes"].as_array().unwrap().clone())
        .collect();
    assert!(received.iter().filter(|m| m["type"] == "notes").count() > 1, "notes arrive in several messages");
    assert_eq!(pitches_and_onsets(&Value::from(streamed)), pitches_and_onsets(&end["composition"]["notes"]));
    // The REST answer to the same request is the same piece.
    let rest = composed(&app, &request).await;
    assert_eq!(rest["notes"], end["composition"]["notes"]);

    // A bad request gets an error message naming the field, then the socket closes.
    let refused = messages(&app, &json!({"length": {"notes": 0}})).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["error"]["details"]["field"], "length.notes");
    let garbled = messages(&app, &json!("not a request")).await;
    assert_eq!(garbled[0]["type"], "error");

    // A message over 2 MiB closes the socket before it is read as a request (a
    // smaller one with the same bad primer gets a validation error instead).
    let mut huge = open_stream(&app, &json!({"primer": {"midi_base64": "A".repeat(3 << 20)}})).await;
    let replies = tokio::time::timeout(Duration::from_secs(10), async {
        let mut texts = Vec::new();
        while let Some(Ok(message)) = huge.next().await {
            match message {
                Message::Text(text) => texts.push(text.to_string()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        texts
    });
    assert_eq!(replies.await.expect("the oversized message ends the connection"), Vec::<String>::new());
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn realtime_pacing_sends_notes_when_they_sound() {
    let app = bundled(64).await;
    let started = std::time::Instant::now();
    let received = messages(
        &app,
        &json!({"length": {"seconds": 2.0}, "tempo_bpm": 120, "seed": 4, "pacing": "realtime"}),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let end = received.last().unwrap();
    assert_eq!(end["type"], "end");
    let seconds = end["composition"]["stats"]["seconds"].as_f64().unwrap();
    assert!(seconds >= 2.0, "{seconds}");
    assert!(elapsed >= seconds - 0.05, "the stream took {elapsed:.2} s for {seconds:.2} s of music");
}

/// After a fast piece and a realtime one, every engine histogram the README
/// lists has observed them, and the loaded model's bytes are reported.
#[tokio::test]
async fn the_engine_metrics_observe_the_sessions_it_ran() {
    let app = bundled(64).await;
    composed(&app, &json!({"length": {"notes": 8}, "seed": 3})).await;
    let realtime = json!({"length": {"seconds": 1.0}, "tempo_bpm": 120, "seed": 4, "pacing": "realtime"});
    assert_eq!(messages(&app, &realtime).await.last().unwrap()["type"], "end");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let value = |series: &str| -> f64 {
        let line =
            metrics.lines().find(|line| line.starts_with(series)).unwrap_or_else(|| panic!("no {series}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    for counted in [
        "fugue_generate_batch_size_count",
        "fugue_generate_step_seconds_count",
        r#"fugue_generate_time_to_first_note_seconds_count{pacing="fast"}"#,
        r#"fugue_generate_time_to_first_note_seconds_count{pacing="realtime"}"#,
        "fugue_generate_inter_note_seconds_count",
        "fugue_generate_realtime_lateness_seconds_count",
        r#"fugue_generate_loaded_model_bytes{device="cpu",worker="0"}"#,
    ] {
        assert!(value(counted) >= 1.0, "{counted}: {metrics}");
    }
}

/// A realtime stream relays the notes that sound together (a chord of the
/// four parts) in one message, not a message each, from its first chord on.
#[tokio::test]
async fn realtime_notes_that_sound_together_come_in_one_message() {
    let app = bundled(64).await;
    let received = messages(
        &app,
        &json!({"length": {"seconds": 4.0}, "tempo_bpm": 120, "seed": 5, "pacing": "realtime"}),
    )
    .await;
    let onsets: Vec<Vec<f64>> = received
        .iter()
        .filter(|message| message["type"] == "notes")
        .map(|message| {
            message["notes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|note| note["start_seconds"].as_f64().unwrap())
                .collect()
        })
        .collect();
    // The first chord too: the playback begins once a third of the lookahead is
    // written, not with the chord's first note.
    let mut messages_of_onset: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for (message, starts) in onsets.iter().enumerate() {
        for &start in starts {
            messages_of_onset.entry((start * 1e6).round() as u64).or_default().insert(message);
        }
    }
    let chords = messages_of_onset.values().filter(|messages| messages.len() == 1).count();
    let split: Vec<_> = messages_of_onset.iter().filter(|(_, messages)| messages.len() > 1).collect();
    assert!(chords >= 4, "{chords} onsets sent in one message each");
    assert!(split.is_empty(), "onsets (µs) sent in more than one message: {split:?}");
    assert!(onsets.iter().any(|starts| starts.len() > 1), "no message holds more than one note");
}

#[tokio::test]
async fn a_server_loads_its_default_model_as_it_starts_before_any_request() {
    let app = spawn_app(Options { with_default_model: true, ..Options::default() }).await;
    let loaded = |metrics: &str| {
        metrics.lines().any(|line| line == r#"fugue_generate_loaded_models{device="cpu",worker="0"} 1"#)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if loaded(&metrics) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no model loaded 10 s after the start:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next message on a stream.
async fn next(socket: &mut Socket) -> Value {
    serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap()
}

/// One model's sessions spread over the workers: once the worker that loaded
/// it first runs 32 more than another, the other loads it too.
#[tokio::test]
async fn one_model_s_sessions_spread_over_the_workers() {
    let app =
        spawn_app(Options { with_default_model: true, generation_workers: 2, ..Options::default() }).await;
    // A copy of the bundled default (an events model that steps in batches).
    let other = app.data_dir.parent().unwrap().join("models/other");
    std::fs::create_dir_all(&other).unwrap();
    for file in std::fs::read_dir(project_path("models/default")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), other.join(file.file_name())).unwrap();
    }
    let request = json!({"model": "other", "length": {"endless": true}, "pacing": "realtime"});
    // The first session's notes: one worker has loaded the model.
    let mut first = open_stream(&app, &request).await;
    let start = next(&mut first).await;
    assert_eq!(start["type"], "start", "{start}");
    assert_eq!(next(&mut first).await["type"], "notes");
    let mut streams = vec![first];
    for _ in 1..40 {
        let mut stream = open_stream(&app, &request).await;
        assert_eq!(next(&mut stream).await["type"], "start");
        streams.push(stream);
    }
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    let mut live: Vec<u64> =
        ready["workers"].as_array().unwrap().iter().map(|worker| worker["live"].as_u64().unwrap()).collect();
    live.sort_unstable();
    assert_eq!(live, [8, 32], "{ready}");
    // The metrics count each worker's own, as /ready does: each has the default
    // (preloaded) and this model, and their live sessions are the 40.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let value = |name: &str| -> u64 {
        let line = metrics.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    for worker in ["0", "1"] {
        assert_eq!(value(&format!(r#"fugue_generate_loaded_models{{device="cpu",worker="{worker}"}}"#)), 2);
    }
    let mut gauged: Vec<u64> = ["0", "1"]
        .iter()
        .map(|worker| value(&format!(r#"fugue_generate_sessions{{state="live",worker="{worker}"}}"#)))
        .collect();
    gauged.sort_unstable();
    assert_eq!(gauged, live, "{metrics}");
}

#[tokio::test]
async fn a_full_server_queues_a_request_until_a_place_frees_and_refuses_past_the_queue() {
    let app = spawn_app(Options {
        bundled_models: true,
        max_sessions_per_worker: 1,
        queue_max_waiting: 1,
        queue_max_wait: Duration::from_secs(4),
        ..Options::default()
    })
    .await;
    // An endless stream holds the one place for as long as its listener stays.
    let endless = json!({"length": {"endless": true}, "pacing": "realtime", "seed": 1});
    let mut long = open_stream(&app, &endless).await;
    let first = long.next().await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(first.to_text().unwrap()).unwrap()["type"], "start");

    // The next request waits in the queue (of one place)...
    let queued = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/v1/generate"));
        async move { client.post(url).json(&json!({"length": {"notes": 8}})).send().await.unwrap() }
    });
    let waiting = |metrics: String| metrics.lines().any(|line| line == "fugue_generate_queue_size 1");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !waiting(app.get("/metrics").await.text().await.unwrap()) {
        assert!(std::time::Instant::now() < deadline, "the request never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and one more finds the queue full: refused at once, told when to retry.
    // No session ended lately, so that is the longest wait, 4 s.
    let busy = generate(&app, &json!({"length": {"notes": 8}})).await;
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.headers()["retry-after"], "4");
    assert_eq!(error_body(busy).await["error"]["details"]["retry_after_secs"], 4);
    let refused = messages(&app, &json!({"length": {"notes": 8}})).await;
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["error"]["code"], "too_many_requests");
    assert!(!queued.is_finished());

    // The stream's client leaves: its place goes to the queued request, and
    // nothing of the stream is stored.
    long.close(None).await.unwrap();
    drop(long);
    let started = queued.await.unwrap();
    assert_eq!(started.status(), StatusCode::CREATED);
    let stored: Value = app.get("/v1/compositions").await.json().await.unwrap();
    assert_eq!(stored.as_array().unwrap().len(), 1, "only the queued request's piece: {stored}");

    // A request that waits its longest is refused.
    let mut long = open_stream(&app, &endless).await;
    long.next().await.unwrap().unwrap();
    let waited = std::time::Instant::now();
    let timed_out = generate(&app, &json!({"length": {"notes": 8}})).await;
    assert_eq!(timed_out.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(waited.elapsed() >= Duration::from_secs(4), "{:?}", waited.elapsed());
    let message = error_body(timed_out).await["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("as long as a request may wait"), "{message}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"fugue_generate_refusals_total{reason="queue_full"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"fugue_generate_refusals_total{reason="queue_timeout"} 1"#), "{metrics}");
    let queued_seconds: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("fugue_generate_queue_seconds_sum "))
        .unwrap_or_else(|| panic!("no queue time in {metrics}"))
        .parse()
        .unwrap();
    assert!(queued_seconds >= 4.0, "the refused request's wait of 4 s is counted: {queued_seconds}");
}

#[tokio::test]
async fn fast_sessions_have_a_limit_of_their_own_that_realtime_listeners_do_not_take() {
    let app = spawn_app(Options {
        bundled_models: true,
        max_sessions_per_worker: 64,
        max_fast_sessions_per_worker: 1,
        queue_max_waiting: 0,
        ..Options::default()
    })
    .await;
    // A long fast piece holds the one fast place while it is written.
    let mut long = open_stream(&app, &json!({"length": {"notes": 2000}, "seed": 1})).await;
    assert_eq!(next(&mut long).await["type"], "start");
    // Another fast request finds no fast place (and no queue): refused, though
    // 63 places are free.
    let busy = generate(&app, &json!({"length": {"notes": 8}})).await;
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    // A realtime listener is admitted by projected load, not by the fast places.
    let endless = json!({"length": {"endless": true}, "pacing": "realtime", "seed": 2});
    let mut listener = open_stream(&app, &endless).await;
    assert_eq!(next(&mut listener).await["type"], "start");
    // Once the long piece is written, its place serves the next fast request,
    // while the listener plays on.
    while let Some(Ok(Message::Text(text))) =
        tokio::time::timeout(Duration::from_secs(60), long.next()).await.unwrap()
    {
        if serde_json::from_str::<Value>(&text).unwrap()["type"] != "notes" {
            break;
        }
    }
    composed(&app, &json!({"length": {"notes": 8}})).await;
    assert_eq!(next(&mut listener).await["type"], "notes");
    listener.close(None).await.unwrap();
}

#[tokio::test]
async fn requests_a_model_cannot_honour_name_the_field() {
    let app = bundled(64).await;
    let cases = [
        (json!({"model": "nope"}), "model"),
        (json!({"model": "../models"}), "model"),
        (json!({"model": "jsb-pianoroll", "key": "C"}), "key"),
        (json!({"model": "jsb-pianoroll", "length": {"bars": 4}}), "length.bars"),
        (json!({"length": {"notes": 0}}), "length.notes"),
        (json!({"lenght": {"notes": 4}}), "lenght"),
        (json!({"length": {"notes": 4, "bars": 2}}), "length"),
        (json!({"primer": {"composition_id": "nope"}}), "primer.composition_id"),
        (json!({"primer": {"midi_base64": "bm90IG1pZGk="}}), "primer.midi_base64"),
        (json!({"primer": {"corpus": true}}), "primer.corpus"),
        (json!({"model": "jsb-pianoroll", "parts": [{"name": "soprano"}]}), "parts"),
        (json!({"parts": [{"name": "soprano", "max_polyphony": 17}]}), "parts[0].max_polyphony"),
    ];
    for (body, field) in cases {
        let response = generate(&app, &body).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_body(response).await["error"]["details"]["field"], field, "{body}");
    }
    let malformed = app
        .client
        .post(app.url("/v1/generate"))
        .header("content-type", "application/json")
        .body("{\"length\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(malformed).await["error"]["code"], "invalid_json");

    // A piano-roll model still generates, in notes, and says how long it took.
    let roll = composed(&app, &json!({"model": "jsb-pianoroll", "length": {"notes": 32}, "seed": 2})).await;
    assert!(!roll["notes"].as_array().unwrap().is_empty());
    let stats = &roll["stats"];
    assert!(stats["elapsed_ms"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["tokens_per_second"].as_f64().unwrap() < 1e6, "{stats}");
}

#[tokio::test]
async fn primers_condition_the_music() {
    let app = bundled(64).await;
    let first = composed(&app, &json!({"length": {"notes": 32}, "seed": 21})).await;
    let plain = composed(&app, &json!({"length": {"notes": 32}, "seed": 22})).await;
    let id = first["composition_id"].as_str().unwrap();
    let continued =
        composed(&app, &json!({"length": {"notes": 32}, "seed": 22, "primer": {"composition_id": id}})).await;
    assert_ne!(continued["notes"], plain["notes"], "the primer changed what came next");
    let notes = json!([{"pitch": 60, "start_beat": 0, "duration_beats": 1}, {"pitch": 64, "start_beat": 1, "duration_beats": 1}]);
    let from_notes =
        composed(&app, &json!({"length": {"notes": 32}, "seed": 22, "primer": {"notes": notes}})).await;
    assert_ne!(from_notes["notes"], plain["notes"]);
    let midi = app.get(first["midi_url"].as_str().unwrap()).await.bytes().await.unwrap();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&midi);
    let from_midi =
        composed(&app, &json!({"length": {"notes": 32}, "seed": 22, "primer": {"midi_base64": encoded}}))
            .await;
    assert_eq!(from_midi["notes"], continued["notes"], "the same primer, as a file or by id");
}

/// One note held for `beats` beats, at 96 ticks per beat.
fn held_note(beats: u64) -> Vec<u8> {
    let note = fugue::midi::Note { pitch: 60, velocity: 90, start: 0, duration: beats * 96 };
    fugue::midi::write(&fugue::midi::Score::of_parts(96, vec![fugue::midi::Part::new(0, 0, vec![note])]))
}

#[tokio::test]
async fn a_primer_gets_the_verdict_and_reason_a_dataset_upload_gives() {
    use base64::Engine as _;
    let app = bundled(64).await;
    let unusable = [
        ("no-notes.mid", fugue::midi::write(&fugue::midi::Score::of_parts(96, Vec::new()))),
        ("too-long.mid", held_note(40_001)),
        ("truncated.mid", held_note(4)[..20].to_vec()),
        ("not-midi.mid", b"RIFF....WAVE".to_vec()),
    ];
    for (name, bytes) in unusable {
        let form = reqwest::multipart::Form::new()
            .text("name", "unusable")
            .part("files", reqwest::multipart::Part::bytes(bytes.clone()).file_name(name));
        let upload = app.post_form("/v1/datasets", form).await;
        assert_eq!(upload.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let report = error_body(upload).await;
        let reason = report["error"]["details"]["report"]["rejected"][0]["reason"].clone();
        assert!(reason.is_string(), "{name}: {report}");

        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let primed =
            generate(&app, &json!({"length": {"notes": 8}, "primer": {"midi_base64": encoded}})).await;
        assert_eq!(primed.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let error = error_body(primed).await;
        assert_eq!(error["error"]["details"]["field"], "primer.midi_base64", "{name}");
        assert_eq!(error["error"]["message"], reason, "{name}");
    }
    // The longest music allowed is a usable primer.
    let encoded = base64::engine::general_purpose::STANDARD.encode(held_note(40_000));
    composed(&app, &json!({"length": {"notes": 8}, "primer": {"midi_base64": encoded}})).await;
}

#[tokio::test]
async fn the_midi_file_states_the_key_tempo_meter_program_and_track_names_asked_for() {
    let app = bundled(64).await;
    let request = json!({"length": {"bars": 4}, "seed": 5, "key": "D", "scale": "minor",
        "tempo_bpm": 96, "time_signature": [3, 4], "program": 40});
    let composition = composed(&app, &request).await;
    let midi = app.get(composition["midi_url"].as_str().unwrap()).await.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("piece.mid");
    std::fs::write(&path, &midi).unwrap();
    let theirs = crate::midi::mido_summaries(&[path.as_path()]).remove(0);
    assert_eq!(theirs["key_signatures"], json!([[0, "Dm"]]));
    assert_eq!(theirs["tempos"], json!([[0, 625_000]]), "96 bpm");
    assert_eq!(theirs["time_signatures"], json!([[0, 3, 4]]));
    let notes = theirs["notes"].as_array().unwrap();
    assert!(!notes.is_empty());
    assert!(notes.iter().all(|note| note[1] == 40), "every note plays the violin: {notes:?}");
    // The bundled default sings in four voices: a track each, named after it.
    assert_eq!(
        theirs["track_names"],
        json!([null, "Soprano", "Alto", "Tenor", "Bass"]),
        "the conductor, then the named parts"
    );

    // Without a key, no key signature is claimed.
    let plain = composed(&app, &json!({"length": {"bars": 2}, "seed": 5})).await;
    let midi = app.get(plain["midi_url"].as_str().unwrap()).await.bytes().await.unwrap();
    std::fs::write(&path, &midi).unwrap();
    let theirs = crate::midi::mido_summaries(&[path.as_path()]).remove(0);
    assert_eq!(theirs["key_signatures"], json!([]));
}

#[tokio::test]
async fn deleting_a_composition_removes_its_midi_file_unless_something_else_is_those_bytes() {
    let app = bundled(64).await;
    let request = json!({"length": {"notes": 16}, "seed": 9});
    let first = composed(&app, &request).await;
    let twin = composed(&app, &request).await;
    let midi_of = |piece: &Value| piece["midi_url"].as_str().unwrap().to_owned();
    let bytes = app.get(&midi_of(&first)).await.bytes().await.unwrap();
    assert_eq!(app.blob_files().len(), 1, "the same request, the same file, stored once");
    // The same bytes uploaded as a dataset.
    let form = reqwest::multipart::Form::new()
        .text("name", "a composition, re-uploaded")
        .part("files", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("piece.mid"));
    let dataset: Value = app.post_form("/v1/datasets", form).await.json().await.unwrap();
    let delete = |path: String| app.client.delete(app.url(&path)).send();

    let id = first["composition_id"].as_str().unwrap();
    assert_eq!(delete(format!("/v1/compositions/{id}")).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/compositions/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(delete(format!("/v1/compositions/{id}")).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&midi_of(&twin)).await.bytes().await.unwrap(), bytes, "the twin keeps the file");

    // Deleting the dataset must not take the remaining composition's file with it.
    let dataset_id = dataset["id"].as_str().unwrap();
    assert_eq!(delete(format!("/v1/datasets/{dataset_id}")).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&midi_of(&twin)).await.bytes().await.unwrap(),
        bytes,
        "the composition keeps the file"
    );

    let twin_id = twin["composition_id"].as_str().unwrap();
    assert_eq!(delete(format!("/v1/compositions/{twin_id}")).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(app.blob_files().is_empty(), "the last reference gone, the file goes: {:?}", app.blob_files());
}

#[tokio::test]
async fn a_composition_row_with_a_corrupt_seed_is_an_error_not_a_default() {
    use sqlx::Connection;
    let app = bundled(64).await;
    let piece = composed(&app, &json!({"length": {"notes": 8}, "seed": u64::MAX})).await;
    let id = piece["composition_id"].as_str().unwrap();
    let path = format!("/v1/compositions/{id}");
    assert_eq!(
        app.get(&path).await.json::<Value>().await.unwrap()["seed"],
        json!(u64::MAX),
        "all of u64 keeps"
    );

    let mut database = sqlx::sqlite::SqliteConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE compositions SET seed = 'seven' WHERE id = ?")
        .bind(id)
        .execute(&mut database)
        .await
        .unwrap();
    let response = app.get(&path).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_body(response).await["error"]["code"], "internal");
}

#[tokio::test]
async fn a_cancel_message_ends_the_stream_and_stores_nothing() {
    let app = bundled(64).await;
    // Realtime pacing over 30 s: without the cancel, the piece would still be playing.
    let request = json!({"length": {"seconds": 30.0}, "tempo_bpm": 120, "seed": 4, "pacing": "realtime"});
    let mut socket = open_stream(&app, &request).await;
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"start\""), "{first:?}");
    socket.send(Message::Text(json!({"type": "cancel"}).to_string().into())).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut kinds = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            match message {
                Message::Text(text) => {
                    kinds.push(serde_json::from_str::<Value>(&text).unwrap()["type"].clone())
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        kinds
    });
    let kinds = rest.await.expect("the server closes the socket after a cancel");
    assert!(!kinds.contains(&json!("end")), "a cancelled piece does not end normally: {kinds:?}");
    let stored: Value = app.get("/v1/compositions").await.json().await.unwrap();
    assert_eq!(stored, json!([]), "nothing is stored");
}

#[tokio::test]
async fn a_piece_made_whole_does_not_hold_up_the_batched_sessions() {
    let app = bundled(64).await;
    // A piano-roll model cannot step in batches: its piece is made whole.
    let whole = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/v1/generate"));
        let request = json!({"model": "jsb-pianoroll", "length": {"tokens": 10000}, "seed": 4});
        async move { client.post(url).json(&request).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile an events piece is written and answered.
    let batched = composed(&app, &json!({"length": {"notes": 8}, "seed": 4})).await;
    assert_eq!(batched["notes"].as_array().unwrap().len(), 8);
    assert!(!whole.is_finished(), "the events piece came back only after the piano-roll piece was made");
    assert_eq!(whole.await.unwrap().status(), StatusCode::CREATED);
}
