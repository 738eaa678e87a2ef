// Models: each one's figures, a button to view its evaluation, and one to make
// it the default.

import { api, showError } from "./api.js";

const $ = (id) => document.getElementById(id);

// How the page names a model: its name, and the start of its id when the two differ
// (a trained model is named after its preset and dataset, so names can repeat).
export function modelLabel(model) {
  return model.name === model.id ? model.id : `${model.name} (${model.id.slice(0, 8)})`;
}

// Fills the model picker and table; returns the models (none when the list failed).
export async function refreshModels(onChanged, view) {
  try {
    const models = await api("/v1/models");
    const select = $("model");
    const chosen = select.value;
    select.replaceChildren(
      ...models.map((model) => new Option(`${model.name}${model.is_default ? " (default)" : ""}`, model.id)),
    );
    select.value = chosen && models.some((m) => m.id === chosen) ? chosen : models.find((m) => m.is_default)?.id ?? "";
    $("model-list").tBodies[0].replaceChildren(...models.map((model) => row(model, onChanged, view)));
    return models;
  } catch (problem) {
    showError(problem, {}, $("error-models"));
    return [];
  }
}

function row(model, onChanged, view) {
  const tr = document.createElement("tr");
  const accuracy = model.summary.best_valid_accuracy;
  const cells = [
    modelLabel(model),
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
  const viewing = document.createElement("td");
  const open = document.createElement("button");
  open.type = "button";
  open.textContent = "View";
  open.setAttribute("aria-label", `View the evaluation of ${model.name}`);
  open.addEventListener("click", () => view.show(model.id));
  viewing.append(open);
  tr.append(viewing);
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
