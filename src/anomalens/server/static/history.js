// History: the inspections on record (GET /v1/inspections, paged, by verdict, model and day), kept across
// restarts of the service, and their CSV export (GET /v1/inspections.csv).

const PAGE = 50;
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
  row.className = inspection.verdict;
  return row;
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
    $("history-page").textContent = shown ? `${offset + 1}–${offset + shown} of ${listing.total}` : `none of ${listing.total}`;
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
