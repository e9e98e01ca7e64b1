// The page's views, one shown at a time under its tab: Inspect, History (history.js) and Models (models.js).
// A listing is loaded again each time its view is shown.
const VIEWS = {
  inspect: () => {},
  history: () => loadHistory(historyOffset),
  models: () => listModels(),
};

function showTab(name) {
  for (const view of Object.keys(VIEWS)) {
    $(`${view}-view`).hidden = view !== name;
    $(`tab-${view}`).setAttribute("aria-selected", String(view === name));
  }
  VIEWS[name]();
}

for (const name of Object.keys(VIEWS)) $(`tab-${name}`).addEventListener("click", () => showTab(name));
