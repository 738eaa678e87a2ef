//! `fugue bench load`: many WebSocket sessions against a real `fugue serve` on
//! loopback, started over a ramp, bounded in count and in time.
//!
//! Each session sends one request and reads the stream to its end. It records the
//! time to the first note (from opening the connection) and, with realtime pacing,
//! each note's lateness: when it arrived against when it should sound, counted
//! from the `start` message (the server's pacing clock starts there too). The
//! server is spawned from this binary unless `--server` names one; its peak RSS
//! and CPU time come from `/proc`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::args::LoadBenchArgs;

/// How one session ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    Finished,
    /// An `error` message, by its code (`too_many_requests`, …).
    Refused(String),
    ConnectFailed,
    #[default]
    ClosedEarly,
    TimedOut,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Finished => f.write_str("finished"),
            Ending::Refused(code) => write!(f, "refused ({code})"),
            Ending::ConnectFailed => f.write_str("connect failed"),
            Ending::ClosedEarly => f.write_str("closed before the end"),
            Ending::TimedOut => f.write_str("timed out"),
        }
    }
}

/// A session's first notes, whose lateness is reported apart.
const OPENING_NOTES: usize = 4;

#[derive(Default)]
struct SessionRecord {
    ending: Ending,
    first_note: Option<Duration>,
    /// Seconds late (negative: early) per note; realtime pacing only.
    lateness: Vec<f64>,
    notes: usize,
    /// From its first note to its end, since the load began.
    playing: Option<(Duration, Duration)>,
    /// Seconds of music in the notes received: to the end of the last.
    music_seconds: f64,
}

pub fn run(args: &LoadBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let (base, mut spawned) = match &args.server {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let (url, child) = spawn_server(args)?;
            (url, Some(child))
        }
    };
    let pid = args.server_pid.or(spawned.as_ref().map(Child::id));
    let outcome = runtime.block_on(async {
        wait_until_ready(&base).await?;
        let cpu_before = pid.map(cpu_seconds).transpose()?;
        let own_before = cpu_seconds(std::process::id())?;
        let (stop_sampling, stopped) = tokio::sync::oneshot::channel();
        let sampler = pid.map(|pid| tokio::spawn(busiest_second(pid, stopped)));
        let started = Instant::now();
        let records = drive(args, &base).await;
        let wall = started.elapsed();
        let _ = stop_sampling.send(());
        let busiest = match sampler {
            Some(sampler) => sampler.await?,
            None => 0.0,
        };
        let cpu = match (pid, cpu_before) {
            (Some(pid), Some(before)) => Some(ServerCpu { seconds: cpu_seconds(pid)? - before, busiest }),
            _ => None,
        };
        let own = cpu_seconds(std::process::id())? - own_before;
        let peak_rss = pid.map(|pid| super::memory_mb(pid, "VmHWM")).transpose()?;
        let metrics = http_get(base.trim_start_matches("http://"), "/metrics").await.unwrap_or_default();
        anyhow::Ok((records, wall, cpu, own, peak_rss, metrics))
    });
    if let Some(child) = spawned.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (records, wall, cpu, own_cpu, peak_rss, metrics) = outcome?;
    report(args, &base, spawned.is_some(), &records, wall, cpu, peak_rss);
    println!(
        "load generator (this process): CPU {:.2} cores on average ({own_cpu:.1} s)",
        own_cpu / wall.as_secs_f64()
    );
    if let Some((on_time, notes)) = server_lateness(&metrics) {
        println!(
            "server side: {:.1}% of {notes} notes sent within 50 ms of their time (fugue_generate_realtime_lateness_seconds)",
            100.0 * on_time
        );
    }
    Ok(())
}

/// The server's CPU time over the run, and its busiest second's, in cores.
struct ServerCpu {
    seconds: f64,
    busiest: f64,
}

/// The most CPU the process used in any one second (in cores), sampled until
/// `stop`: the load comes in a burst, and the run's average hides it.
async fn busiest_second(pid: u32, mut stop: tokio::sync::oneshot::Receiver<()>) -> f64 {
    let mut busiest = 0.0f64;
    let mut last = (Instant::now(), cpu_seconds(pid).unwrap_or(0.0));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Ok(cpu) = cpu_seconds(pid) else { return busiest };
                let now = Instant::now();
                busiest = busiest.max((cpu - last.1) / (now - last.0).as_secs_f64());
                last = (now, cpu);
            }
            _ = &mut stop => return busiest,
        }
    }
}

/// `fugue serve` on a free loopback port with the bundled models, no training
/// workers, and a throwaway data dir; the rest of its settings come from the
/// environment (`FUGUE_MAX_SESSIONS_PER_WORKER`, …), as they would in production.
fn spawn_server(args: &LoadBenchArgs) -> anyhow::Result<(String, Child)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let data_dir = std::env::temp_dir().join(format!("fugue-bench-load-{}", std::process::id()));
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--train-workers", "0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--models-dir")
        .arg(&args.models_dir)
        .env("FUGUE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting fugue serve")?;
    Ok((format!("http://127.0.0.1:{port}"), child))
}

async fn wait_until_ready(base: &str) -> anyhow::Result<()> {
    let address = base.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(answer) = http_get(address, "/ready").await
            && answer.starts_with("HTTP/1.1 200")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{base} was not ready within 60 s")
}

/// A bare HTTP/1.1 GET: enough for a readiness probe without an HTTP client.
async fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// Opens `args.sessions` sessions spread evenly over the ramp, and waits for all.
async fn drive(args: &LoadBenchArgs, base: &str) -> Vec<SessionRecord> {
    let url = format!("{}/v1/generate/stream", base.replacen("http", "ws", 1));
    let mut request = json!({"length": {"notes": args.notes}, "pacing": args.pacing});
    if let Some(model) = &args.model {
        request["model"] = json!(model);
    }
    if let Some(bpm) = args.tempo_bpm {
        request["tempo_bpm"] = json!(bpm);
    }
    let began = Instant::now();
    let gap = Duration::from_secs_f64(args.ramp_secs / f64::from(args.sessions.max(1)));
    let limit = Duration::from_secs(args.timeout_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.sessions {
        let (url, mut request) = (url.clone(), request.clone());
        request["seed"] = json!(index);
        tasks.spawn(async move {
            tokio::time::sleep(gap * index).await;
            let realtime = request["pacing"] == "realtime";
            match tokio::time::timeout(limit, session(&url, request.to_string(), realtime, began)).await {
                Ok(record) => record,
                Err(_) => SessionRecord { ending: Ending::TimedOut, ..SessionRecord::default() },
            }
        });
    }
    tasks.join_all().await
}

async fn session(url: &str, request: String, realtime: bool, began: Instant) -> SessionRecord {
    let opened = Instant::now();
    let mut record = SessionRecord::default();
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
        record.ending = Ending::ConnectFailed;
        return record;
    };
    if socket.send(Message::text(request)).await.is_err() {
        return record;
    }
    let mut clock = None;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else { continue };
        let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
        let now = Instant::now();
        match message["type"].as_str() {
            Some("start") => clock = Some(now),
            Some("notes") => {
                let notes = message["notes"].as_array().map(Vec::as_slice).unwrap_or_default();
                record.first_note.get_or_insert(now - opened);
                let since = now - began;
                record.playing = Some((record.playing.map_or(since, |(from, _)| from), since));
                record.notes += notes.len();
                let ends = notes.iter().filter_map(|note| {
                    Some(note["start_seconds"].as_f64()? + note["duration_seconds"].as_f64()?)
                });
                record.music_seconds = ends.fold(record.music_seconds, f64::max);
                if let (true, Some(clock)) = (realtime, clock) {
                    let arrived = (now - clock).as_secs_f64();
                    record.lateness.extend(
                        notes.iter().filter_map(|note| Some(arrived - note["start_seconds"].as_f64()?)),
                    );
                }
            }
            Some("end") => {
                record.ending = Ending::Finished;
                record.playing = record.playing.map(|(from, _)| (from, now - began));
                break;
            }
            Some("error") => {
                let code = message["error"]["code"].as_str().unwrap_or("unknown");
                record.ending = Ending::Refused(code.to_owned());
                break;
            }
            _ => {}
        }
    }
    record
}

fn report(
    args: &LoadBenchArgs,
    base: &str,
    spawned: bool,
    records: &[SessionRecord],
    wall: Duration,
    cpu: Option<ServerCpu>,
    peak_rss_mb: Option<f64>,
) {
    let server = if spawned { format!("{base} (spawned)") } else { base.to_owned() };
    let tempo = args.tempo_bpm.map_or_else(|| "the model's tempo".to_owned(), |bpm| format!("{bpm} bpm"));
    println!(
        "fugue bench load: {} sessions ({}, {} notes each, {tempo}) over {} s against {server}",
        args.sessions, args.pacing, args.notes, args.ramp_secs
    );
    let mut endings: BTreeMap<&Ending, usize> = BTreeMap::new();
    for record in records {
        *endings.entry(&record.ending).or_default() += 1;
    }
    let endings: Vec<String> = endings.iter().map(|(ending, count)| format!("{count} {ending}")).collect();
    println!("sessions: {}", endings.join(", "));
    let mut first_notes: Vec<f64> =
        records.iter().filter_map(|record| Some(record.first_note?.as_secs_f64() * 1e3)).collect();
    println!("time to first note: {}", summary(&mut first_notes, "ms"));
    if args.pacing == "realtime" {
        let mut lateness: Vec<f64> =
            records.iter().flat_map(|record| record.lateness.iter().map(|late| late * 1e3)).collect();
        println!("lateness: {}", summary(&mut lateness, "ms"));
        // A session's start is where it is likeliest late: its playback begins
        // with notes written just before.
        let mut opening: Vec<f64> = records
            .iter()
            .flat_map(|record| record.lateness.iter().take(OPENING_NOTES).map(|late| late * 1e3))
            .collect();
        println!("  of each session's first {OPENING_NOTES} notes: {}", summary(&mut opening, "ms"));
    }
    // The most sessions between their first note and their end at one moment.
    let mut changes: Vec<(Duration, i64)> = records
        .iter()
        .filter_map(|record| record.playing)
        .flat_map(|(from, to)| [(from, 1), (to, -1)])
        .collect();
    changes.sort();
    let peak = changes
        .iter()
        .scan(0, |playing, (_, change)| {
            *playing += change;
            Some(*playing)
        })
        .max()
        .unwrap_or(0);
    let mut rates: Vec<f64> = records
        .iter()
        .filter(|record| record.music_seconds > 0.0)
        .map(|record| record.notes as f64 / record.music_seconds)
        .collect();
    println!("playing at once: at most {peak}; each listener hears {}", summary(&mut rates, "notes/s"));
    let notes: usize = records.iter().map(|record| record.notes).sum();
    println!(
        "notes: {notes} in {:.1} s: {:.0} notes/s",
        wall.as_secs_f64(),
        notes as f64 / wall.as_secs_f64()
    );
    match (cpu, peak_rss_mb) {
        (Some(cpu), Some(rss)) => println!(
            "server: peak RSS {rss:.0} MB, CPU {:.2} cores on average ({:.1} s over {:.1} s), {:.2} in its busiest second",
            cpu.seconds / wall.as_secs_f64(),
            cpu.seconds,
            wall.as_secs_f64(),
            cpu.busiest
        ),
        _ => println!("server: RSS and CPU unknown (give --server-pid for a server not spawned here)"),
    }
}

/// From the server's metrics: the share of realtime notes it sent within 50 ms of
/// their time, and how many it sent.
fn server_lateness(metrics: &str) -> Option<(f64, u64)> {
    let value =
        |prefix: &str| metrics.lines().find_map(|line| line.strip_prefix(prefix)?.trim().parse::<f64>().ok());
    let within = value("fugue_generate_realtime_lateness_seconds_bucket{le=\"0.05\"}")?;
    let count = value("fugue_generate_realtime_lateness_seconds_count")?;
    (count > 0.0).then(|| (within / count, count as u64))
}

/// `p50 …, p99 …, max … (n values)`, or `none`.
fn summary(values: &mut [f64], unit: &str) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    values.sort_by(f64::total_cmp);
    let at = |share: f64| super::quantile(values, share);
    format!(
        "p50 {:.1} {unit}, p99 {:.1} {unit}, max {:.1} {unit} ({} values)",
        at(0.5),
        at(0.99),
        at(1.0),
        values.len()
    )
}

/// User plus system CPU seconds of a process so far (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let times = super::CpuTimes::of(pid)?;
    Ok(times.user + times.system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_off_the_sorted_values() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(summary(&mut values, "ms"), "p50 51.0 ms, p99 99.0 ms, max 100.0 ms (100 values)");
        assert_eq!(summary(&mut [], "ms"), "none");
    }
}
