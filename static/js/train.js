// Train: upload a corpus and read its ingest report, start a job, and watch its
// losses per epoch live over the job's events WebSocket; within an epoch, its
// `progress` messages move a dashed training-loss line to where the epoch is.
// A search (trials above 0) draws one validation-loss line per trial instead,
// from its `trial` messages, with a legend naming each trial's drawn values.

import { api, clearErrors, showError, socket } from "./api.js";

const $ = (id) => document.getElementById(id);

export class Trainer {
  constructor(onModelsChanged) {
    this.onModelsChanged = onModelsChanged;
    this.job = null;
    this.epochs = [];
    // A search's trials by number: { record, epochs }.
    this.trials = new Map();
    this.progress = null;
    $("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.upload();
    });
    $("job-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    $("cancel-job").addEventListener("click", () => this.cancel());
    new ResizeObserver(() => this.drawChart()).observe($("chart"));
  }

  async refreshDatasets(selected) {
    const datasets = await api("/v1/datasets");
    $("job-dataset").replaceChildren(
      ...datasets.map((dataset) => new Option(`${dataset.name} (${dataset.file_count} files)`, dataset.id)),
    );
    if (datasets.length === 0) $("job-dataset").replaceChildren(new Option("upload a dataset first", ""));
    if (selected) $("job-dataset").value = selected;
  }

  async upload() {
    const form = $("upload-form");
    clearErrors(form);
    const files = $("dataset-files").files;
    if (files.length === 0) {
      $("error-files").textContent = "Choose one or more MIDI files or a zip.";
      return;
    }
    const body = new FormData();
    body.append("name", $("dataset-name").value);
    for (const file of files) body.append("files", file, file.name);
    $("upload").disabled = true;
    $("report").textContent = "Uploading and reading the files…";
    try {
      const dataset = await api("/v1/datasets", { method: "POST", form: body });
      this.showReport(dataset.report);
      await this.refreshDatasets(dataset.id);
    } catch (problem) {
      $("report").textContent = "";
      showError(problem, { name: "name", files: "files" }, $("error-upload"));
    } finally {
      $("upload").disabled = false;
    }
  }

  showReport(report) {
    const box = $("report");
    const accepted = document.createElement("p");
    accepted.textContent =
      `Accepted ${report.accepted.length} file(s), ${report.totals.notes} notes, ` +
      `${Math.round(report.totals.duration_seconds)} s of music; rejected ${report.rejected.length}.`;
    box.replaceChildren(accepted);
    if (report.rejected.length > 0) {
      const list = document.createElement("ul");
      for (const rejection of report.rejected) {
        const item = document.createElement("li");
        item.textContent = `${rejection.file}: ${rejection.reason}`;
        list.append(item);
      }
      box.append(list);
    }
  }

  async start() {
    const form = $("job-form");
    clearErrors(form);
    let hyperparameters = {};
    const extra = $("job-overrides").value.trim();
    if (extra) {
      try {
        hyperparameters = JSON.parse(extra);
      } catch {
        $("error-hyperparameters").textContent = "Not JSON: write an object such as {\"hidden_size\": 256}.";
        return;
      }
    }
    hyperparameters.epochs = Number($("job-epochs").value);
    const trials = Number($("job-trials").value);
    const dataset = $("job-dataset").selectedOptions[0]?.textContent.replace(/ \(\d+ files\)$/, "") ?? "";
    const body = {
      dataset_id: $("job-dataset").value,
      preset: $("job-preset").value,
      hyperparameters,
      name: `${$("job-preset").value} on ${dataset}`.slice(0, 200),
    };
    if (trials > 0) body.search = { trials, budget_minutes: Number($("job-search-minutes").value) };
    try {
      const job = await api("/v1/training-jobs", { method: "POST", json: body });
      this.follow(job);
    } catch (problem) {
      showError(problem, { dataset_id: "dataset_id", hyperparameters: "hyperparameters", search: "search" }, $("error-job"));
    }
  }

  follow(job) {
    this.job = job;
    this.epochs = [];
    this.trials = new Map();
    this.progress = null;
    $("epochs").tBodies[0].replaceChildren();
    $("trial-legend").replaceChildren();
    $("cancel-job").disabled = false;
    this.drawChart();
    const ws = socket(`/v1/training-jobs/${job.id}/events`);
    ws.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    ws.addEventListener("close", () => {
      $("cancel-job").disabled = true;
    });
  }

  receive(event) {
    if (event.type === "snapshot") {
      for (const metrics of event.job.epochs) this.addEpoch(metrics);
      for (const trial of event.job.trials) {
        const { epochs, ...record } = trial;
        for (const metrics of epochs) this.addTrialEpoch(record, metrics);
        this.addTrialEpoch(record, null);
      }
      this.winner = event.job.winner;
      this.showState(event.job.state, event.job);
      if (event.job.progress) this.showProgress(event.job.progress);
    } else if (event.type === "progress") {
      this.showProgress(event.progress);
    } else if (event.type === "epoch") {
      this.addEpoch(event.metrics, event.eta_seconds);
    } else if (event.type === "trial") {
      this.addTrialEpoch(event.trial, event.metrics);
    } else if (event.type === "state") {
      this.showState(event.state, event);
    } else if (event.type === "end") {
      this.showState(event.state, this.job);
      if (event.state === "succeeded") this.onModelsChanged();
      if (event.state === "succeeded" && this.trials.size > 0) {
        api(`/v1/training-jobs/${this.job.id}`).then((job) => {
          this.winner = job.winner;
          this.showTrials();
        });
      }
    }
  }

  showState(state, details) {
    const words = {
      queued: "Queued: waiting for a worker.",
      running: `Training on ${details.device ?? "a device"} (attempt ${details.attempt}).`,
      succeeded: "Done: the model is in the list below.",
      failed: `Failed: ${details.error ?? "see the server log"}.`,
      cancelled: "Cancelled.",
    };
    $("job-status").textContent = words[state] ?? state;
    if (details.cancel_requested && state === "running") $("job-status").textContent += " Stopping…";
  }

  showProgress(progress) {
    this.progress = progress;
    const percent = Math.round((100 * progress.step) / Math.max(1, progress.steps));
    $("job-status").textContent =
      `${progress.trial == null ? "Epoch" : `Trial ${progress.trial}, epoch`} ${progress.epoch}: ` +
      `step ${progress.step} of ${progress.steps} (${percent}%), ` +
      `${progress.steps_per_second.toFixed(1)} steps/s, about ${Math.ceil(progress.eta_seconds)} s to the epoch's end.`;
    this.drawChart();
  }

  addEpoch(metrics, eta) {
    if (this.progress && this.progress.epoch <= metrics.epoch) this.progress = null;
    this.epochs = this.epochs.filter((known) => known.epoch !== metrics.epoch);
    this.epochs.push(metrics);
    this.epochs.sort((a, b) => a.epoch - b.epoch);
    const row = document.createElement("tr");
    const accuracy = metrics.valid_accuracy == null ? "–" : `${(metrics.valid_accuracy * 100).toFixed(1)}%`;
    for (const value of [metrics.epoch, metrics.train_loss.toFixed(4), metrics.valid_loss.toFixed(4), accuracy, metrics.seconds.toFixed(1)]) {
      const cell = document.createElement("td");
      cell.className = "number";
      cell.textContent = value;
      row.append(cell);
    }
    $("epochs").tBodies[0].append(row);
    if (eta != null) $("job-status").textContent = `Epoch ${metrics.epoch} done; about ${Math.ceil(eta)} s to go at most.`;
    this.drawChart();
  }

  // A trial's epoch (or, with none, its record alone: a new rung, a stop).
  addTrialEpoch(record, metrics) {
    const trial = this.trials.get(record.trial) ?? { record, epochs: [] };
    trial.record = record;
    if (metrics) {
      trial.epochs = trial.epochs.filter((known) => known.epoch !== metrics.epoch);
      trial.epochs.push(metrics);
      trial.epochs.sort((a, b) => a.epoch - b.epoch);
      if (this.progress && this.progress.epoch <= metrics.epoch) this.progress = null;
    }
    this.trials.set(record.trial, trial);
    this.showTrials();
    this.drawChart();
  }

  // The legend: a swatch per trial's line, its drawn values, its best loss and
  // what the halving made of it.
  showTrials() {
    const items = [...this.trials.values()].sort((a, b) => a.record.trial - b.record.trial).map(({ record, epochs }) => {
      const item = document.createElement("li");
      item.dataset.trial = record.trial;
      item.dataset.points = epochs.length;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = trialColour(record.trial);
      const values = Object.entries(record.hyperparameters)
        .map(([name, value]) => `${name} ${Number.isInteger(value) ? value : value.toPrecision(3)}`).join(", ");
      const loss = record.best_valid_loss == null ? "" : `, best ${record.best_valid_loss.toFixed(4)}`;
      const verdict = record.trial === this.winner ? " — the winner"
        : record.stopped ? ` — stopped after rung ${record.rung + 1}` : ` — rung ${record.rung + 1}`;
      const text = document.createElement("span");
      text.textContent = `trial ${record.trial}: ${values}${loss}${verdict}`;
      if (record.trial === this.winner) item.className = "winner";
      item.append(swatch, text);
      return item;
    });
    $("trial-legend").replaceChildren(...items);
  }

  drawChart() {
    if (this.trials.size > 0) {
      this.drawTrials();
      return;
    }
    const { g, width, height } = clearedChart();
    // The running epoch, as a point between the last epoch and its own: epoch
    // e at a fraction f of its steps sits at e - 1 + f (the axis starts at 0
    // while the first epoch runs).
    const running = this.progress && {
      at: this.progress.epoch - 1 + this.progress.step / Math.max(1, this.progress.steps),
      loss: this.progress.train_loss,
    };
    if (this.epochs.length === 0 && !running) {
      g.fillText("Losses per epoch appear here.", 16, height / 2);
      return;
    }
    const values = this.epochs.flatMap((m) => [m.train_loss, m.valid_loss]).concat(running ? [running.loss] : []);
    const [low, high] = [Math.min(...values), Math.max(...values)];
    const last = Math.max(2, this.epochs.length, this.progress ? this.progress.epoch : 0);
    const first = running ? Math.min(1, Math.floor(running.at)) : 1;
    const { x, y } = axes(g, width, height, first, last, low, high);
    for (const [key, colour, label] of [["train_loss", "#3559c7", "train"], ["valid_loss", "#e0452b", "valid"]]) {
      g.strokeStyle = colour;
      g.fillStyle = colour;
      g.lineWidth = 2;
      g.beginPath();
      this.epochs.forEach((m, i) => (i === 0 ? g.moveTo(x(m.epoch), y(m[key])) : g.lineTo(x(m.epoch), y(m[key]))));
      g.stroke();
      for (const m of this.epochs) g.fillRect(x(m.epoch) - 2, y(m[key]) - 2, 4, 4);
      g.fillText(label, key === "train_loss" ? PAD.left : PAD.left + 50, 12);
    }
    if (running) {
      const previous = this.epochs[this.epochs.length - 1];
      g.strokeStyle = "#3559c7";
      g.fillStyle = "#3559c7";
      g.setLineDash([4, 4]);
      g.beginPath();
      if (previous) g.moveTo(x(previous.epoch), y(previous.train_loss));
      else g.moveTo(x(running.at), y(running.loss));
      g.lineTo(x(running.at), y(running.loss));
      g.stroke();
      g.setLineDash([]);
      g.beginPath();
      g.arc(x(running.at), y(running.loss), 3, 0, 2 * Math.PI);
      g.fill();
    }
  }

  // A search: each trial's validation loss per epoch, a line of its own colour.
  drawTrials() {
    const { g, width, height } = clearedChart();
    const trials = [...this.trials.values()].filter((trial) => trial.epochs.length > 0);
    if (trials.length === 0) {
      g.fillText("Each trial's validation loss per epoch appears here.", 16, height / 2);
      return;
    }
    const values = trials.flatMap((trial) => trial.epochs.map((m) => m.valid_loss));
    const [low, high] = [Math.min(...values), Math.max(...values)];
    const last = Math.max(2, ...trials.flatMap((trial) => trial.epochs.map((m) => m.epoch)));
    const { x, y } = axes(g, width, height, 1, last, low, high);
    g.fillText("valid loss per trial", PAD.left, 12);
    for (const { record, epochs } of trials) {
      g.strokeStyle = trialColour(record.trial);
      g.fillStyle = g.strokeStyle;
      g.lineWidth = record.trial === this.winner ? 3 : 2;
      g.setLineDash(record.stopped ? [4, 4] : []);
      g.beginPath();
      epochs.forEach((m, i) => (i === 0 ? g.moveTo(x(m.epoch), y(m.valid_loss)) : g.lineTo(x(m.epoch), y(m.valid_loss))));
      g.stroke();
      for (const m of epochs) g.fillRect(x(m.epoch) - 2, y(m.valid_loss) - 2, 4, 4);
    }
    g.setLineDash([]);
  }

  async cancel() {
    if (!this.job) return;
    try {
      await api(`/v1/training-jobs/${this.job.id}/cancel`, { method: "POST" });
    } catch (problem) {
      showError(problem, {}, $("error-job"));
    }
  }
}

// The chart's margins, in CSS pixels.
const PAD = { left: 48, right: 12, top: 20, bottom: 24 };

// The chart's canvas at the device's resolution, cleared, with the text colour set.
function clearedChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const [width, height] = [canvas.clientWidth, canvas.clientHeight];
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "12px system-ui, sans-serif";
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  g.fillStyle = dark ? "#c9d1e0" : "#374151";
  return { g, width, height };
}

// Epochs `first` to `last` across, losses `low` to `high` up, labelled.
function axes(g, width, height, first, last, low, high) {
  const x = (epoch) => PAD.left + ((epoch - first) / (last - first)) * (width - PAD.left - PAD.right);
  const y = (loss) => PAD.top + (1 - (loss - low) / Math.max(1e-9, high - low)) * (height - PAD.top - PAD.bottom);
  g.fillText(high.toFixed(3), 4, PAD.top + 4);
  g.fillText(low.toFixed(3), 4, height - PAD.bottom);
  g.fillText("epoch", width - 48, height - 6);
  return { x, y };
}

// A trial's colour: hues spread around the wheel, the same on every redraw.
function trialColour(trial) {
  return `hsl(${(trial * 137.5) % 360} 70% 48%)`;
}
