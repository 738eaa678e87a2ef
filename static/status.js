// Shows liveness and readiness, naming each readiness check that is not ok.
async function showStatus() {
  const health = document.getElementById("health");
  const ready = document.getElementById("ready");
  try {
    const alive = await fetch("/health");
    health.textContent = alive.ok ? "yes" : `no (HTTP ${alive.status})`;
    health.className = alive.ok ? "ok" : "problem";
    const report = await (await fetch("/ready")).json();
    const problems = Object.entries(report.checks).filter(([, outcome]) => outcome !== "ok");
    ready.textContent = report.ready ? "yes" : problems.map(([name, outcome]) => `${name}: ${outcome}`).join("; ");
    ready.className = report.ready ? "ok" : "problem";
  } catch (error) {
    health.textContent = `unreachable (${error.message})`;
    health.className = "problem";
  }
}
showStatus();
