// A batch of images: chosen as files, as a folder (a folder picker) or dropped on the page (files or folders,
// walked), the images kept and other files counted as skipped; sent in requests of CHUNK images with a fitted
// model, each request's results in the gallery as soon as it is scored, and a progress bar of the images sent
// and scored. Server folders (folders.js) send their images through the same loop.

const IMAGE_NAME = /\.(png|jpe?g|bmp|tiff?)$/i;  // what the service reads (data.IMAGE_SUFFIXES)
let chosen = { files: [], skipped: 0 };  // the images to inspect, last chosen or dropped, and the files left out

const isImage = (file) => IMAGE_NAME.test(file.name);

// Keeps the images of `files` as the batch to inspect and says how many, and how many others were skipped.
function choose(files) {
  const images = files.filter(isImage);
  chosen = { files: images, skipped: files.length - images.length };
  const skipped = chosen.skipped ? `; ${chosen.skipped} skipped: not images (PNG, JPEG, BMP or TIFF by name)` : "";
  setStatus(`${images.length} image${images.length === 1 ? "" : "s"} chosen${skipped}.`, !images.length);
}

// Every file under a dropped entry: a folder's entries are read in rounds until one comes back empty.
async function walkEntry(entry, files) {
  if (entry.isFile) {
    files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const entries = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!entries.length) break;
      for (const inner of entries) await walkEntry(inner, files);
    }
  }
}

// The files dropped: folders walked; the entries are taken before any wait (the drop's data is gone after).
async function droppedFiles(dataTransfer) {
  const items = [...dataTransfer.items].filter((item) => item.kind === "file");
  const dropped = items.map((item) => ({ entry: item.webkitGetAsEntry && item.webkitGetAsEntry(), file: item.getAsFile() }));
  const files = [];
  for (const { entry, file } of dropped) {
    if (entry) await walkEntry(entry, files);
    else if (file) files.push(file);
  }
  return files;
}

function showProgress(sent, scored, total) {
  const bar = $("batch-progress");
  bar.hidden = total === 0;
  bar.setAttribute("aria-valuemax", String(total));
  bar.setAttribute("aria-valuenow", String(scored));
  const words = `${scored} of ${total} scored, ${sent} sent`;
  bar.setAttribute("aria-valuetext", words);
  bar.firstElementChild.style.width = `${total ? (100 * scored) / total : 0}%`;
  $("batch-progress-text").textContent = total ? words : "";
}

// Inspects a batch: `sources` (Files, or server images: folders.js) in order, `requests` one per chunk, each
// {start, count, send}; a chunk none of whose images could be read says why for each, and the rest go on.
async function inspectBatch(sources, requests) {
  const request = clearResult();
  batch.files = sources;
  let [expert, refused, scored] = [null, null, 0];
  setStatus("Inspecting…");
  try {
    for (const { start, count, send } of requests) {
      showProgress(start + count, scored, sources.length);
      let body;
      try {
        body = await send();
      } catch (error) {
        if (!(error.body && error.body.results)) throw error;
        [body, refused] = [error.body, error];  // every image of this chunk refused: each says why
      }
      if (request !== latest) return;  // a newer inspection was sent meanwhile
      expert = body.expert || expert;
      batch.modelId = body.model_id ?? batch.modelId;  // the stored model, whose references the detail shows
      body.results.forEach((result, i) => { batch.results[start + i] = result; });
      scored = start + count;
      showProgress(scored, scored, sources.length);
      showGallery();
      if (!inspectionId) showFirst();
    }
    if (!expert) throw refused;
    setStatus([`Inspected with ${expert}.`, ...fileErrors({ results: batch.results })].join("\n"));
  } catch (error) {
    if (request === latest) setStatus(error.message, true);
  }
}

$("query").addEventListener("change", () => choose([...$("query").files]));
$("query-folder").addEventListener("change", () => choose([...$("query-folder").files]));
document.addEventListener("dragover", (event) => {
  event.preventDefault();  // the page takes the drop (the browser would open the file instead)
  document.body.classList.add("dropping");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
document.addEventListener("drop", async (event) => {
  event.preventDefault();
  document.body.classList.remove("dropping");
  try {
    choose(await droppedFiles(event.dataTransfer));
  } catch (error) {
    setStatus(`The dropped files could not be read: ${error.message}`, true);
  }
});
