//! A worker's side of a training attempt: it starts the training process
//! ([`super::attempt`]), stops or kills it when the worker must, passes its stderr
//! on, and learns how the attempt ended: from the process's report, or from how
//! the process died.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;

use super::attempt::{AttemptSettings, Outcome};

/// How long a training process told to stop may take before it is killed. It
/// stops before its next batch, so only a batch (or an epoch's validation and
/// checkpoint) longer than this is cut short, and the last checkpoint stands.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Lines of a dead training process's stderr that go into the job's error.
const STDERR_TAIL_LINES: usize = 10;

/// Why a worker ends an attempt before the training process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Cancellation was asked for: stop, and the job ends cancelled.
    Cancel,
    /// The worker is shutting down: stop, and the job goes back to the queue.
    Shutdown,
    /// Another worker owns the job: kill at once; nothing more may be written.
    LeaseLost,
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Ending {
    /// The training process's own report.
    Reported(Outcome),
    /// The process ended (or never started) without a report: how, with the last
    /// lines of its stderr.
    Died(String),
}

/// Starts `<program> train-attempt` for one attempt.
pub fn start(program: &Path, env: &[(String, String)], attempt: &AttemptSettings) -> std::io::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(["train-attempt", "--job", &attempt.job])
        .arg("--data-dir")
        .arg(&attempt.data_dir)
        .arg("--work-dir")
        .arg(&attempt.work_dir)
        .args(["--checkpoint-key", &attempt.checkpoint_key, "--model-key", &attempt.model_key])
        .args(["--device", &attempt.device.to_string(), "--threads", &attempt.threads.to_string()])
        .args(["--lease-timeout-ms", &attempt.lease_timeout.as_millis().to_string()])
        .env("FUGUE_LEASE_TOKEN", &attempt.lease_token)
        .env("DATABASE_URL", &attempt.database_url)
        .env("FUGUE_OBJECT_STORE", attempt.object_store.as_deref().unwrap_or(""))
        .envs(env.iter().map(|(name, value)| (name, value)))
        // Plain lines: the last ones may end up in the job's error.
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so a Ctrl-C at the terminal reaches only the worker,
        // which then stops the attempt in order.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

/// Waits for the training process to end, stopping it when `stop` says so: by
/// closing its stdin, and killing it [`STOP_GRACE`] later if need be; or, when
/// the lease is lost, by killing it at once.
pub async fn supervise(mut child: Child, mut stop: watch::Receiver<Option<StopReason>>) -> Ending {
    let stdin = child.stdin.take();
    let report = tokio::spawn(last_report(child.stdout.take()));
    let stderr = tokio::spawn(pass_on(child.stderr.take()));
    let status = wait(&mut child, stdin, &mut stop).await;
    // Both pipes end when the process does.
    let report = report.await.ok().flatten();
    let tail = stderr.await.unwrap_or_default();
    match report {
        Some(outcome) => Ending::Reported(outcome),
        None => Ending::Died(died(status, &tail)),
    }
}

async fn wait(
    child: &mut Child,
    stdin: Option<ChildStdin>,
    stop: &mut watch::Receiver<Option<StopReason>>,
) -> std::io::Result<ExitStatus> {
    let reason = tokio::select! {
        status = child.wait() => return status,
        reason = stop.wait_for(Option::is_some) => reason.ok().and_then(|reason| *reason),
    };
    match reason {
        Some(StopReason::LeaseLost) => kill(child),
        Some(StopReason::Cancel | StopReason::Shutdown) => {
            drop(stdin);
            if let Ok(status) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
                return status;
            }
            tracing::warn!(
                grace_ms = STOP_GRACE.as_millis() as u64,
                "the training process did not stop in time"
            );
            kill(child);
        }
        // The heartbeat is gone without a reason: nothing will ask any more.
        None => {}
    }
    child.wait().await
}

fn kill(child: &mut Child) {
    if let Err(error) = child.start_kill() {
        tracing::debug!(%error, "could not kill the training process (it has ended)");
    }
}

/// The last line of the process's stdout that is an [`Outcome`].
async fn last_report(stdout: Option<impl AsyncRead + Unpin>) -> Option<Outcome> {
    let mut lines = BufReader::new(stdout?).split(b'\n');
    let mut report = None;
    while let Ok(Some(line)) = lines.next_segment().await {
        if let Ok(outcome) = serde_json::from_slice(&line) {
            report = Some(outcome);
        }
    }
    report
}

/// Copies the process's stderr to this process's stderr as it comes, line by
/// line; the last [`STDERR_TAIL_LINES`] lines.
async fn pass_on(stderr: Option<impl AsyncRead + Unpin>) -> Vec<String> {
    let Some(stderr) = stderr else { return Vec::new() };
    let mut lines = BufReader::new(stderr).split(b'\n');
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    while let Ok(Some(line)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&line).into_owned();
        eprintln!("{line}");
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into()
}

/// What a process that ended without a report died of, and its last words.
fn died(status: std::io::Result<ExitStatus>, tail: &[String]) -> String {
    let how = match status {
        Ok(status) => match (status.signal(), status.code()) {
            (Some(signal), _) => {
                format!("the training process was killed by signal {signal}{}", signal_name(signal))
            }
            (None, Some(code)) => format!("the training process exited with status {code} without a report"),
            (None, None) => format!("the training process ended without a report ({status})"),
        },
        Err(error) => format!("the training process could not be waited for: {error}"),
    };
    match tail {
        [] => how,
        _ => format!("{how}; its last output:\n{}", tail.join("\n")),
    }
}

/// ` (SIGKILL)` and the like, for the signals that end a crashed or killed process.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_names_its_signal_or_status_and_its_last_words() {
        let killed = died(Ok(ExitStatus::from_raw(9)), &[]);
        assert_eq!(killed, "the training process was killed by signal 9 (SIGKILL)");
        let aborted = died(Ok(ExitStatus::from_raw(6)), &["terminate called after throwing".to_owned()]);
        assert_eq!(
            aborted,
            "the training process was killed by signal 6 (SIGABRT); its last output:\nterminate called after throwing"
        );
        let exited = died(Ok(ExitStatus::from_raw(101 << 8)), &[]);
        assert_eq!(exited, "the training process exited with status 101 without a report");
    }

    #[test]
    fn outcomes_cross_the_pipe_as_one_json_line_each() {
        let failed = Outcome::Failed { error: "training diverged\nat epoch 3".to_owned() };
        let line = serde_json::to_string(&failed).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            matches!(serde_json::from_str(&line).unwrap(), Outcome::Failed { error } if error.contains("epoch 3"))
        );
        assert_eq!(serde_json::to_string(&Outcome::LeaseLost).unwrap(), r#"{"outcome":"lease_lost"}"#);
    }
}
