// History: the inspections on record (GET /v1/inspections, paged, by verdict, model and day), kept across
// restarts of the service, and their CSV export (GET /v1/inspections.csv); a row opened shows its result, its
// chat and the feedback given (GET /v1/inspections/{id}).

const PAGE = 100;
let historyOffset = 0;

// The listing's filters as query parameters; a day is its UTC day.
function historyQuery() {
  const query = new URLSearchParams();
  if ($("history-verdict").value) query.set("verdict", $("history-verdict").value);
  if ($("history-model").value.trim()) query.set("model", $("history-model").value.trim());
  const day = $("history-day").value;
  if (day) {
    const next = new Date(`${day}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    query.set("since", `${day}T00:00:00Z`);
    query.set("until", next.toISOString());
  }
  return query;
}

function historyRow(inspection) {
  const row = document.createElement("tr");
  const number = (value) => (value === null || value === undefined ? "" : value.toFixed(3));
  const cells = [
    inspection.created.replace("T", " ").slice(0, 19), inspection.source, inspection.verdict,
    number(inspection.probability), number(inspection.score), inspection.model_id || "",
  ];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.appendChild(cell);
  }
  const open = Object.assign(document.createElement("button"), { textContent: inspection.source || inspection.id });
  open.setAttribute("aria-label", `show the inspection of ${inspection.source || inspection.id} with its chat`);
  row.cells[1].replaceChildren(open);  // the image's name opens it, by keyboard too
  row.addEventListener("click", () => openInspection(inspection.id, row));
  row.className = inspection.verdict;
  return row;
}

// One line of the chat, as the chat view shows it.
function chatLine(who, text) {
  return Object.assign(document.createElement("div"), { className: `msg ${who}`, textContent: text });
}

// The inspection on record in full, under the table: its result, its chat turns and the feedback given.
async function openInspection(id, row) {
  for (const other of row.parentNode.rows) other.classList.toggle("opened", other === row);
  try {
    const shown = await call(`/v1/inspections/${encodeURIComponent(id)}`);
    const result = shown.result || {};
    $("history-detail-title").textContent = `${shown.source || id} (${shown.created || ""})`;
    $("history-result").textContent = result.ok === false ? `Not inspected: ${result.error}`
      : `${shown.verdict} · p ${(shown.probability ?? 0).toFixed(2)} · score ${(shown.score ?? 0).toFixed(3)}` +
        ` · model ${shown.model_id || "none"}` + (result.answer ? ` — ${result.answer}` : "");
    const turns = (shown.chat || []).flatMap((turn) => [chatLine("user", turn.question), chatLine("bot", turn.answer)]);
    $("history-chat").replaceChildren(...(turns.length ? turns : [chatLine("bot", "No chat about this inspection.")]));
    $("history-feedback").replaceChildren(...(shown.feedback || []).map((given) => Object.assign(
      document.createElement("li"),
      { textContent: `Feedback (${given.source}): ${given.verdict || ""} ${given.defect_type || ""} ${given.note || ""}`.trim() },
    )));
    $("history-detail").hidden = false;
    show($("history-status"), "");
  } catch (error) {
    show($("history-status"), `Could not show the inspection ${id}: ${error.message}`, true);
  }
}

async function loadHistory(offset = 0) {
  const query = historyQuery();
  query.set("limit", PAGE);
  query.set("offset", offset);
  try {
    const listing = await call(`/v1/inspections?${query}`);
    historyOffset = offset;
    $("history-table").tBodies[0].replaceChildren(...listing.inspections.map(historyRow));
    const shown = listing.inspections.length;
    const pages = Math.max(1, Math.ceil(listing.total / PAGE));
    $("history-page").textContent = `Page ${Math.floor(offset / PAGE) + 1} of ${pages}` +
      (shown ? ` (${offset + 1}–${offset + shown} of ${listing.total})` : ` (none of ${listing.total})`);
    $("history-prev").disabled = offset === 0;
    $("history-next").disabled = offset + shown >= listing.total;
    show($("history-status"), "");
  } catch (error) {
    show($("history-status"), `Could not list the inspections: ${error.message}`, true);
  }
}

// The CSV is fetched with the key (a plain link could not send it) and handed to the browser as a download.
async function exportHistory() {
  try {
    const response = await fetch(`/v1/inspections.csv?${historyQuery()}`, { headers: headers() });
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || `HTTP ${response.status}`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = "inspections.csv";
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) {
    show($("history-status"), `Could not export the inspections: ${error.message}`, true);
  }
}

$("history-show").addEventListener("click", () => loadHistory(0));
$("history-prev").addEventListener("click", () => loadHistory(Math.max(historyOffset - PAGE, 0)));
$("history-next").addEventListener("click", () => loadHistory(historyOffset + PAGE));
$("history-csv").addEventListener("click", exportHistory);
