// Models: the stored models (GET /v1/models) with their engine, expert, normal images, version, size and date;
// one opened shows its versions and what each taught (its lineage, oldest first); "Use" makes it the model of
// the next inspection. Shown again whenever the page lists the models: a fit done, a version taught.

let storedModels = [];
let openedModel = null;  // the id of the model whose versions are shown

function sizeWords(bytes) {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(Math.round(bytes / 1e3), 1)} kB`;
}

function button(text, label, action) {
  const element = document.createElement("button");
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", action);
  return element;
}

function modelRow(model) {
  const row = document.createElement("tr");
  const cell = (...children) => row.appendChild(document.createElement("td")).append(...children);
  const opened = model.id === openedModel;
  const open = button(model.id, `open model ${model.id}: its versions`, () => openModel(model.id));
  open.setAttribute("aria-expanded", String(opened));
  open.setAttribute("aria-controls", "model-detail");
  cell(open);
  row.classList.toggle("opened", opened);
  if (!model.ok) {  // a file that cannot be read: why, in place of its details
    cell(model.error);
    row.lastChild.colSpan = 7;
    row.classList.add("error");
    return row;
  }
  const created = new Date(model.created * 1000).toISOString().replace("T", " ").slice(0, 16);
  const version = model.version === null ? "—" : String(model.version);  // an exported ONNX file has none
  for (const text of [model.engine, model.expert, String(model.n_normal), version, sizeWords(model.bytes), created]) {
    cell(text);
  }
  cell(button("Use", `use model ${model.id} for the next inspection`, () => useModel(model.id)));
  return row;
}

// The opened model's versions: as fitted, then each taught one with what it learned; the last is served.
function showOpened() {
  const model = storedModels.find((m) => m.id === openedModel);
  $("model-detail").hidden = !model;
  if (!model) return;
  const served = model.version ? `, version ${model.version} served` : "";
  $("model-detail-title").textContent = `Model ${model.id} (${model.file}${served})`;
  const steps = model.ok ? ["v1: as fitted", ...model.lineage] : [model.error];
  const items = steps.map((text) => Object.assign(document.createElement("li"), { textContent: text }));
  $("model-lineage").replaceChildren(...items);
}

// Called by loadModels (app.js) with every listing.
function showModels(models) {
  storedModels = models;
  $("models-table").tBodies[0].replaceChildren(...models.map(modelRow));
  show($("models-status"), models.length ? "" : "No stored models yet: fit one from normal images.");
  showOpened();
}

function openModel(id) {
  openedModel = id;
  showModels(storedModels);
}

function useModel(id) {
  $("model").value = id;
  document.querySelector("input[name=mode][value=model]").checked = true;
  showTab("inspect");
  setStatus(`Model ${id} inspects the next images.`);
}

// The listing for this view: the page's model list is loaded again (keeping the model chosen), and with it this.
async function listModels() {
  if (!(await loadModels($("model").value))) show($("models-status"), $("status").textContent, true);
}

$("models-refresh").addEventListener("click", listModels);
