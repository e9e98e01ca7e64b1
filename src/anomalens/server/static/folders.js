// Folders on the server (GET /v1/folders, where the service was started with --folder-root NAME=PATH): a root
// chosen, its folders walked, and the images of one inspected in place (POST /v1/folders/{root}/inspect, CHUNK
// a request) with the fitted model chosen; they come into the gallery as uploaded images do (batch.js).

let folderListing = null;  // the folder shown: {root, path, folders, images, skipped}
const folderStatus = (text, isError) => show($("folder-status"), text, isError);
const parentOf = (path) => path.split("/").slice(0, -1).join("/");

// A server image's bytes, for the detail view (fetched with the key: an image's src could not send it).
async function serverImage(source) {
  const query = new URLSearchParams({ path: source.path });
  const response = await fetch(`/v1/folders/${encodeURIComponent(source.root)}/image?${query}`, { headers: headers() });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || `HTTP ${response.status}`);
  return response.blob();
}

async function loadRoots() {
  try {
    const { roots } = await call("/v1/folders");
    $("folder-root").replaceChildren(...roots.map((name) => new Option(name, name)));
    await openFolder("");
  } catch (error) {
    folderStatus(`No server folders: ${error.message}`, true);
  }
}

async function openFolder(path) {
  const root = $("folder-root").value;
  try {
    const listing = await call(`/v1/folders/${encodeURIComponent(root)}?${new URLSearchParams({ path })}`);
    folderListing = { root, ...listing };
    $("folder-path").textContent = `${root}/${path}`;
    $("folder-up").disabled = !path;
    $("folder-list").replaceChildren(...listing.folders.map((folder) => {
      const button = Object.assign(document.createElement("button"), { textContent: folder.split("/").pop() });
      button.setAttribute("aria-label", `open the folder ${folder}`);
      button.addEventListener("click", () => openFolder(folder));
      const item = document.createElement("li");
      item.appendChild(button);
      return item;
    }));
    $("folder-inspect").disabled = !listing.images.length;
    const skipped = listing.skipped ? `; ${listing.skipped} other files skipped` : "";
    folderStatus(`${listing.images.length} images here${skipped}.`);
  } catch (error) {
    folderStatus(`Could not list ${root}/${path}: ${error.message}`, true);
  }
}

// The folder's images as requests of CHUNK paths each, inspected with the model chosen.
function folderRequests({ root, images }) {
  const requests = [];
  for (let start = 0; start < images.length; start += CHUNK) {
    const paths = images.slice(start, start + CHUNK);
    const body = JSON.stringify({
      paths, model_id: $("model").value, overlay: true, class_name: $("class-name").value.trim() || null,
    });
    const send = () => call(`/v1/folders/${encodeURIComponent(root)}/inspect`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body,
    });
    requests.push({ start, count: paths.length, send });
  }
  return requests;
}

$("folder-inspect").addEventListener("click", async () => {
  if (!folderListing) return;
  const mode = document.querySelector("input[name=mode]:checked").value;
  if (mode !== "model" || !$("model").value) {
    return folderStatus("A server folder is inspected with a fitted model: choose one under 2.", true);
  }
  const sources = folderListing.images.map((path) => ({ root: folderListing.root, path }));
  $("folder-inspect").disabled = true;
  try {
    await inspectBatch(sources, folderRequests(folderListing));
  } finally {
    $("folder-inspect").disabled = false;
  }
});
$("server-folders").addEventListener("toggle", () => { if ($("server-folders").open) loadRoots(); });
$("folder-root").addEventListener("change", () => openFolder(""));
$("folder-up").addEventListener("click", () => folderListing && openFolder(parentOf(folderListing.path)));
