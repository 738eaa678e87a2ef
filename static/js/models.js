// Models: each one's figures, and a button to make it the default.

import { api, showError } from "./api.js";

const $ = (id) => document.getElementById(id);

export async function refreshModels(onChanged) {
  try {
    const models = await api("/v1/models");
    const select = $("model");
    const chosen = select.value;
    select.replaceChildren(
      ...models.map((model) => new Option(`${model.name}${model.is_default ? " (default)" : ""}`, model.id)),
    );
    select.value = chosen && models.some((m) => m.id === chosen) ? chosen : models.find((m) => m.is_default)?.id ?? "";
    $("model-list").tBodies[0].replaceChildren(...models.map((model) => row(model, onChanged)));
  } catch (problem) {
    showError(problem, {}, $("error-models"));
  }
}

function row(model, onChanged) {
  const tr = document.createElement("tr");
  const accuracy = model.summary.best_valid_accuracy;
  const cells = [
    model.name === model.id ? model.id : `${model.name} (${model.id.slice(0, 8)})`,
    model.preset,
    model.source,
    Number.isFinite(model.summary.best_valid_loss) ? model.summary.best_valid_loss.toFixed(4) : "–",
    accuracy == null ? "–" : `${(accuracy * 100).toFixed(1)}%`,
  ];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const action = document.createElement("td");
  if (model.is_default) {
    action.textContent = "default";
  } else {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Make default";
    button.setAttribute("aria-label", `Make ${model.name} the default model`);
    button.addEventListener("click", async () => {
      try {
        await api(`/v1/models/${encodeURIComponent(model.id)}/default`, { method: "PUT" });
        onChanged();
      } catch (problem) {
        showError(problem, {}, $("error-models"));
      }
    });
    action.append(button);
  }
  tr.append(action);
  return tr;
}
