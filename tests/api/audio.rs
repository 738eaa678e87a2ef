//! Audio: scores rendered through the SoundFont (the one `make test` installs),
//! read back with independent decoders (hound, libsndfile through Python's
//! `soundfile`) and checked by ear's proxies: length, pitch, loudness where notes
//! sound and silence where none do, timbre per program.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fugue::audio::{Render, SAMPLE_RATE, load_font};
use fugue::config::AudioSettings;
use fugue::midi::{Note, Part, Score, TempoChange};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, TestApp, error_body, installed_audio, project_path, spawn_app, venv_python};

/// 480 ticks per beat at 120 bpm: 960 ticks a second.
const TICKS_PER_SECOND: u64 = 960;

fn note(pitch: u8, start_seconds: f64, seconds: f64) -> Note {
    let tick = |s: f64| (s * TICKS_PER_SECOND as f64).round() as u64;
    Note { pitch, velocity: 100, start: tick(start_seconds), duration: tick(seconds) }
}

fn score(parts: Vec<Part>) -> Score {
    let mut score = Score::of_parts(480, parts);
    score.tempos.push(TempoChange { tick: 0, micros_per_beat: 500_000 });
    score
}

/// Mono samples (the mean of left and right, in -1..1) through the library.
fn render(score: &Score) -> Vec<f32> {
    let font = load_font(&installed_audio().soundfont).expect("make test installs the SoundFont");
    let mut render = Render::new(&font, score);
    let mut samples = Vec::new();
    while render.next_chunk(&mut samples) {}
    samples.chunks(2).map(|lr| (f32::from(lr[0]) + f32::from(lr[1])) / 2.0 / 32768.0).collect()
}

/// Mono samples and the rate of a WAV file, read by hound.
fn decode(bytes: &[u8]) -> (Vec<f32>, u32) {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a WAV file");
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 16));
    let interleaved: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let mono =
        interleaved.chunks(2).map(|lr| (f32::from(lr[0]) + f32::from(lr[1])) / 2.0 / 32768.0).collect();
    (mono, spec.sample_rate)
}

fn window(samples: &[f32], from: f64, to: f64) -> &[f32] {
    let at = |s: f64| ((s * f64::from(SAMPLE_RATE)) as usize).min(samples.len());
    &samples[at(from)..at(to)]
}

fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

/// The magnitude spectrum (Hann window, Goertzel) at each frequency of `hz`.
fn spectrum(samples: &[f32], hz: impl Iterator<Item = u32>) -> Vec<f64> {
    let n = samples.len() as f64;
    let windowed: Vec<f64> = samples
        .iter()
        .enumerate()
        .map(|(i, &s)| f64::from(s) * (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n).cos()))
        .collect();
    hz.map(|f| {
        let coefficient = 2.0 * (std::f64::consts::TAU * f64::from(f) / f64::from(SAMPLE_RATE)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in &windowed {
            (s1, s2) = (x + coefficient * s1 - s2, s1);
        }
        (s1 * s1 + s2 * s2 - coefficient * s1 * s2).max(0.0).sqrt()
    })
    .collect()
}

fn peak_hz(samples: &[f32]) -> u32 {
    let spectrum = spectrum(samples, 50..=2000u32);
    let (index, _) = spectrum.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    50 + index as u32
}

/// What libsndfile (Python's `soundfile`) reads in a WAV file: frames, rate, channels, peak.
fn soundfile_reads(path: &Path) -> Value {
    let script = "import json, sys, soundfile\n\
        data, rate = soundfile.read(sys.argv[1], dtype='float32')\n\
        print(json.dumps({'frames': len(data), 'rate': rate, 'channels': data.shape[1], 'peak': float(abs(data).max())}))";
    let output = Command::new(venv_python()).args(["-c", script]).arg(path).output().expect("python runs");
    assert!(output.status.success(), "soundfile: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Whether libsndfile reads exactly the same samples from two files.
fn same_samples(a: &Path, b: &Path) -> bool {
    let script = "import sys, soundfile\n\
        a, _ = soundfile.read(sys.argv[1], dtype='int16')\n\
        b, _ = soundfile.read(sys.argv[2], dtype='int16')\n\
        print(a.shape == b.shape and bool((a == b).all()))";
    let output =
        Command::new(venv_python()).args(["-c", script]).arg(a).arg(b).output().expect("python runs");
    assert!(output.status.success(), "soundfile: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim() == "True"
}

#[test]
fn one_a4_for_a_second_on_the_piano_renders_a_second_peaking_at_440_hz() {
    let dir = tempfile::tempdir().unwrap();
    let (midi, wav) = (dir.path().join("a4.mid"), dir.path().join("a4.wav"));
    std::fs::write(&midi, fugue::midi::write(&score(vec![Part::new(0, 0, vec![note(69, 0.0, 1.0)])])))
        .unwrap();
    let rendered = Command::new(env!("CARGO_BIN_EXE_fugue"))
        .arg("render")
        .arg(&midi)
        .arg("--out")
        .arg(&wav)
        .env("FUGUE_SOUNDFONT", installed_audio().soundfont)
        .output()
        .unwrap();
    assert!(rendered.status.success(), "fugue render: {}", String::from_utf8_lossy(&rendered.stderr));

    let (samples, rate) = decode(&std::fs::read(&wav).unwrap());
    assert_eq!(rate, 44_100);
    let seconds = samples.len() as f64 / f64::from(rate);
    assert!((seconds - 1.0).abs() <= 0.020, "{seconds} s");
    let peak = peak_hz(window(&samples, 0.05, 0.95));
    assert!((431..=449).contains(&peak), "the spectrum peaks at {peak} Hz");
    assert!(rms(window(&samples, 0.05, 0.5)) > 0.01, "the note sounds");

    let read = soundfile_reads(&wav);
    assert_eq!((read["frames"].as_u64(), read["rate"].as_u64()), (Some(samples.len() as u64), Some(44_100)));
    assert_eq!(read["channels"], 2);
    assert!(read["peak"].as_f64().unwrap() > 0.05, "{read}");
}

#[test]
fn four_parts_each_sound_alone_in_their_own_timbre_and_rests_are_silent() {
    // Four parts (flute, clarinet, bassoon, tuba) and a drum part, each playing
    // from 0 to 1 s and from 3 to 4 s, nothing in between.
    let line = |pitch: u8| vec![note(pitch, 0.0, 1.0), note(pitch, 3.0, 1.0)];
    let mut drums = Part::new(9, 0, line(38));
    drums.is_drum = true;
    let parts = vec![
        Part::new(0, 73, line(72)),
        Part::new(1, 71, line(65)),
        Part::new(2, 70, line(55)),
        Part::new(3, 58, line(43)),
        drums,
    ];
    let whole = render(&score(parts.clone()));
    assert_eq!(whole.len(), 4 * SAMPLE_RATE as usize, "the audio ends with the last note");
    assert!(rms(window(&whole, 0.1, 0.9)) > 0.02);
    assert!(rms(window(&whole, 3.1, 3.9)) > 0.02);
    // The rest after the release tails: silence, as written.
    assert!(rms(window(&whole, 2.3, 2.95)) < 0.002, "rest: {}", rms(window(&whole, 2.3, 2.95)));

    for part in &parts {
        let solo = render(&score(vec![part.clone()]));
        // The first 300 ms: a snare has died away long before the note's end.
        let loudness = rms(window(&solo, 0.0, 0.3));
        assert!(loudness > 0.005, "program {} (drums {}) soloed: RMS {loudness}", part.program, part.is_drum);
    }

    // The same notes on two programs: different spectra (timbre), same pitch.
    let on = |program: u8| render(&score(vec![Part::new(0, program, vec![note(60, 0.0, 1.0)])]));
    let normalised = |samples: &[f32]| {
        // 10 Hz apart: enough to tell timbres, cheap in a debug build.
        let spectrum = spectrum(window(samples, 0.1, 0.6), (100..=4000).step_by(10));
        let total: f64 = spectrum.iter().sum();
        spectrum.into_iter().map(|m| m / total).collect::<Vec<f64>>()
    };
    let distance = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>();
    let (piano, flute, piano_again) = (normalised(&on(0)), normalised(&on(73)), normalised(&on(0)));
    assert_eq!(distance(&piano, &piano_again), 0.0, "rendering is deterministic");
    let apart = distance(&piano, &flute);
    assert!(apart > 0.3, "piano and flute spectra differ by {apart} (of 2)");
    // Drums on channel 10 are the drum kit, not the piano at that key.
    let snare = render(&score(vec![parts[4].clone()]));
    let piano_d2 = render(&score(vec![Part::new(0, 0, line(38))]));
    let (snare, piano_d2) = (normalised(&snare), normalised(&piano_d2));
    assert!(distance(&snare, &piano_d2) > 0.3, "channel 10 plays drums");
}

#[test]
fn velocity_and_tempo_are_as_written() {
    let loud = render(&score(vec![Part::new(0, 0, vec![Note { velocity: 120, ..note(60, 0.0, 1.0) }])]));
    let soft = render(&score(vec![Part::new(0, 0, vec![Note { velocity: 30, ..note(60, 0.0, 1.0) }])]));
    let (loud, soft) = (rms(window(&loud, 0.05, 0.9)), rms(window(&soft, 0.05, 0.9)));
    assert!(loud > 2.0 * soft, "velocity 120: {loud}, velocity 30: {soft}");
    // Two beats at 60 bpm last two seconds.
    let mut slow =
        score(vec![Part::new(0, 0, vec![Note { pitch: 60, velocity: 90, start: 0, duration: 960 }])]);
    slow.tempos[0].micros_per_beat = 1_000_000;
    assert_eq!(render(&slow).len(), 2 * SAMPLE_RATE as usize);
}

async fn bundled(audio: AudioSettings) -> TestApp {
    spawn_app(Options { bundled_models: true, audio, ..Options::default() }).await
}

async fn generate(app: &TestApp, accept: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/v1/generate")).header("accept", accept).json(body).send().await.unwrap()
}

#[tokio::test]
async fn a_composition_downloads_as_audio_that_sounds_where_its_notes_do() {
    let app = bundled(installed_audio()).await;
    let request = json!({"length": {"bars": 4}, "seed": 21, "tempo_bpm": 100});
    let piece: Value = generate(&app, "application/json", &request).await.json().await.unwrap();
    let id = piece["composition_id"].as_str().unwrap();
    let notes = piece["notes"].as_array().unwrap();
    let end = notes
        .iter()
        .map(|n| n["start_seconds"].as_f64().unwrap() + n["duration_seconds"].as_f64().unwrap())
        .fold(0.0, f64::max);

    let response = app.get(&format!("/v1/compositions/{id}/audio?format=wav")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(response.headers()["content-disposition"], format!("attachment; filename=\"fugue-{id}.wav\""));
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    let (samples, rate) = decode(&bytes);
    let seconds = samples.len() as f64 / f64::from(rate);
    assert!((seconds - end).abs() <= 0.020, "{seconds} s of audio for {end} s of notes");
    // Every note is heard: each one's first 100 ms (or its length) is not silent.
    for n in notes {
        let start = n["start_seconds"].as_f64().unwrap();
        let sounding =
            rms(window(&samples, start + 0.005, start + n["duration_seconds"].as_f64().unwrap().min(0.1)));
        assert!(sounding > 0.001, "a note at {start} s is silent: {n}");
    }
    // The same audio straight from POST /v1/generate with `Accept: audio/wav`.
    let direct = generate(&app, "audio/wav", &request).await;
    assert_eq!(direct.status(), StatusCode::CREATED);
    assert_eq!(direct.headers()["content-type"], "audio/wav");
    let location = direct.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v1/compositions/"));
    assert_eq!(decode(&direct.bytes().await.unwrap()).0, samples, "same request, same seed: same audio");

    // FLAC, by the query or by Accept: lossless, so libsndfile reads the same samples.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("piece.wav");
    std::fs::write(&wav, &bytes).unwrap();
    let by_query = app.get(&format!("/v1/compositions/{id}/audio?format=flac")).await;
    let by_accept = app
        .client
        .get(app.url(&format!("/v1/compositions/{id}/audio")))
        .header("accept", "audio/flac")
        .send()
        .await
        .unwrap();
    for response in [by_query, by_accept] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "audio/flac");
        assert_eq!(
            response.headers()["content-disposition"],
            format!("attachment; filename=\"fugue-{id}.flac\"")
        );
        let flac = response.bytes().await.unwrap();
        assert!(flac.len() < bytes.len(), "FLAC {} bytes, WAV {}", flac.len(), bytes.len());
        let path = dir.path().join("piece.flac");
        std::fs::write(&path, &flac).unwrap();
        assert_eq!(soundfile_reads(&path)["frames"], soundfile_reads(&wav)["frames"]);
        assert!(same_samples(&wav, &path), "the FLAC decodes to the WAV's samples");
    }

    let unknown = app.get(&format!("/v1/compositions/{id}/audio?format=mp3")).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(unknown).await["error"]["details"]["field"], "format");
    assert_eq!(app.get("/v1/compositions/nope/audio").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_that_asks_for_an_octet_stream_gets_the_same_bytes_labelled_so() {
    let app = bundled(installed_audio()).await;
    let request = json!({"length": {"notes": 12}, "seed": 4});
    let piece: Value = generate(&app, "application/json", &request).await.json().await.unwrap();
    let id = piece["composition_id"].as_str().unwrap();
    let fetch =
        |path: String, accept: &'static str| app.client.get(app.url(&path)).header("accept", accept).send();
    for (path, specific) in [
        (format!("/v1/compositions/{id}/midi"), "audio/midi"),
        (format!("/v1/compositions/{id}/audio"), "audio/wav"),
    ] {
        let labelled = fetch(path.clone(), "*/*").await.unwrap();
        assert_eq!(labelled.headers()["content-type"], specific, "{path}");
        assert_eq!(labelled.headers()["vary"], "accept", "{path}");
        let expected = labelled.bytes().await.unwrap();
        let generic = fetch(path.clone(), "application/octet-stream").await.unwrap();
        assert_eq!(generic.status(), StatusCode::OK);
        assert_eq!(generic.headers()["content-type"], "application/octet-stream", "{path}");
        assert_eq!(generic.bytes().await.unwrap(), expected, "{path}: the same bytes");
    }
    let midi = fetch(format!("/v1/compositions/{id}/midi"), "application/octet-stream").await.unwrap();
    assert_eq!(&midi.bytes().await.unwrap()[..4], b"MThd");
    // The query still chooses the format; the label follows the Accept header.
    let flac =
        fetch(format!("/v1/compositions/{id}/audio?format=flac"), "application/octet-stream").await.unwrap();
    assert_eq!(flac.headers()["content-type"], "application/octet-stream");
    assert_eq!(&flac.bytes().await.unwrap()[..4], b"fLaC");
}

#[tokio::test]
async fn without_a_soundfont_audio_answers_503_saying_how_to_install_one_and_the_rest_works() {
    let missing = AudioSettings {
        soundfont: project_path("soundfonts/none.sf2"),
        page_soundfont: project_path("soundfonts/none.sf3"),
        ..installed_audio()
    };
    let app = bundled(missing).await;
    let request = json!({"length": {"notes": 8}, "seed": 2});
    let piece = generate(&app, "application/json", &request).await;
    assert_eq!(piece.status(), StatusCode::CREATED, "generation works without a font");
    let piece: Value = piece.json().await.unwrap();
    let id = piece["composition_id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/compositions/{id}/midi")).await.status(), StatusCode::OK);
    assert_eq!(app.get("/ready").await.status(), StatusCode::OK);

    let listed = app.get("/v1/compositions").await.json::<Value>().await.unwrap();
    let before = listed.as_array().unwrap().len();
    for response in [
        app.get(&format!("/v1/compositions/{id}/audio")).await,
        generate(&app, "audio/wav", &request).await,
        app.get("/v1/soundfont").await,
    ] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let message = error_body(response).await["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("make setup") && message.contains("FUGUE_SOUNDFONT"), "{message}");
    }
    let listed = app.get("/v1/compositions").await.json::<Value>().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), before, "audio refused before composing");
}

#[tokio::test]
async fn the_page_gets_a_font_a_browser_can_load_with_an_etag() {
    let installed = installed_audio();
    let app = bundled(installed.clone()).await;
    // FluidR3 GM (148 MB) is too large for a page: FluidR3 Mono (23 MB) is served.
    let response = app.get("/v1/soundfont").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-fugue-soundfont"], "page");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes, std::fs::read(&installed.page_soundfont).unwrap());

    let cached =
        app.client.get(app.url("/v1/soundfont")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert!(cached.bytes().await.unwrap().is_empty());
    let stale =
        app.client.get(app.url("/v1/soundfont")).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::OK);

    // A render font small enough is served itself.
    let small = AudioSettings { soundfont: installed.page_soundfont.clone(), ..installed };
    let app = bundled(small).await;
    let response = app.get("/v1/soundfont").await;
    assert_eq!(response.headers()["x-fugue-soundfont"], "render");
}

#[tokio::test]
async fn audio_longer_than_the_limit_is_refused_and_renders_beyond_the_limit_wait() {
    let app = bundled(AudioSettings { max_seconds: 90.0, max_renders: 1, ..installed_audio() }).await;
    // At 20 bpm a bar of 4/4 lasts 12 s: long audio from few notes.
    let piece = |bars: u32| json!({"length": {"bars": bars}, "tempo_bpm": 20, "seed": 3});
    // 60 s: 10.6 MB of WAV, more than the sockets between server and client hold.
    let long: Value = generate(&app, "application/json", &piece(5)).await.json().await.unwrap();
    let too_long: Value = generate(&app, "application/json", &piece(8)).await.json().await.unwrap();
    let audio_of =
        |piece: &Value| format!("/v1/compositions/{}/audio", piece["composition_id"].as_str().unwrap());

    let refused = app.get(&audio_of(&too_long)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = error_body(refused).await;
    assert_eq!(body["error"]["code"], "limit_exceeded");
    assert_eq!(body["error"]["details"]["max_seconds"], 90.0);

    // One render at a time: while one streams to a client that does not read, the
    // next answers 429; once that client leaves, renders are taken again.
    let mut stalled = app.client.get(app.url(&audio_of(&long))).send().await.unwrap();
    assert_eq!(stalled.status(), StatusCode::OK);
    let _first = stalled.chunk().await.unwrap();
    let busy = app.get(&audio_of(&long)).await;
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.headers()["retry-after"], "1");
    drop(stalled);
    let mut answered = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..100 {
        answered = app.get(&audio_of(&long)).await.status();
        if answered == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, StatusCode::OK);
}
