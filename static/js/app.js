// The page: server status, then the three parts.

import { Composer } from "./compose.js";
import { ModelView } from "./evaluation.js";
import { refreshModels } from "./models.js";
import { Trainer } from "./train.js";

async function showStatus() {
  const status = document.getElementById("status");
  try {
    const report = await (await fetch("/ready")).json();
    const problems = Object.entries(report.checks).filter(([, outcome]) => outcome !== "ok");
    status.textContent = report.ready ? "Server ready." : `Not ready: ${problems.map(([n, o]) => `${n}: ${o}`).join("; ")}`;
    status.className = `status ${report.ready ? "ok" : "problem"}`;
  } catch (error) {
    status.textContent = `The server cannot be reached (${error.message}).`;
    status.className = "status problem";
  }
}

const composer = new Composer();
const models = () => refreshModels(models, view).then((list) => composer.setModels(list));
const view = new ModelView();
const trainer = new Trainer(models);
showStatus();
models();
trainer.refreshDatasets().catch(() => {});
