"""The service's OpenAPI contract, hunted by schemathesis: requests generated from the schema, both fitting it
(positive) and breaking it (negative), sent to the app in process, over every endpoint. None may end in a
5xx: whatever is wrong with a request is the client's to fix and is said in a 4xx."""

from __future__ import annotations

from collections import Counter

import pytest

from anomalens import Inspector
from conftest import save_png, texture

pytestmark = pytest.mark.e2e  # the whole service, through its HTTP interface

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (hypothesis comes with schemathesis)
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

EXAMPLES = 60  # per operation and mode: 19 operations, 6 bodies also broken (4 path strings any text fits)


def aim(case, draw, real: dict) -> None:
    """Half the requests name things that exist (the model, a job, an inspection, a reference the model keeps)
    and inspect a real image, so that the generated values get past the first 404 to the work behind it."""
    if not draw(st.booleans()):
        return
    if case.method != "DELETE":  # the model stays
        case.path_parameters = {name: real[name] for name in case.path_parameters}
    if not isinstance(case.body, dict):
        return
    case.body.update({name: real[name] for name in ("inspection_id", "model_id") if name in case.body})
    if case.path == "/v1/folders/{root}/inspect":  # an image that lies under the root
        case.body["paths"] = ["part.png"]
    if case.path == "/v1/inspect":  # real images, through the model or zero-shot, with the generated options
        case.body.pop("references", None)
        case.body.pop("model_id", None)
        by_model = draw(st.booleans())
        case.body.update(files=[real["png"]] * 2, zero_shot=not by_model, **({"model_id": "tiny"} if by_model else {}))


@pytest.fixture
def app_and_ids(tmp_path):
    """The app serving a small fitted model, keeping records (the inspections endpoints query a real SQLite
    file) and reading a server folder, with a fit job, an inspection and the folder to name."""
    from anomalens.records import RecordStore
    from anomalens.server import create_app

    models = tmp_path / "models"
    models.mkdir()
    Inspector(image_size=64).fit([texture(i, size=64) for i in range(3)]).save(models / "tiny.safetensors")
    png = save_png(tmp_path / "shelf" / "part.png", texture(9, size=64)).read_bytes()
    app = create_app(models, records=RecordStore(tmp_path / "records.db"), folder_roots={"shelf": tmp_path / "shelf"})
    client = TestClient(app)
    job = client.post("/v1/models", files=[("files", ("a.png", png))], data={"model_id": "fitted"}).json()
    inspected = client.post("/v1/inspect", files=[("files", ("b.png", png))], data={"model_id": "tiny"}).json()
    real = {"model_id": "tiny", "job_id": job["job_id"], "inspection_id": inspected["results"][0]["inspection_id"]}
    real["root"] = "shelf"  # a server folder (--folder-root)
    real["name"] = inspected["results"][0]["nearest_reference"]  # a reference the model keeps
    return app, real | {"png": png}


def hunt(operation, mode: GenerationMode, real: dict, sent: Counter) -> None:
    """EXAMPLES requests generated for one operation in one mode; a 5xx fails with the request that got it."""

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case, data):
        aim(case, data.draw, real)
        response = case.call()
        sent[operation.label] += 1
        case.validate_response(response, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:  # nothing to break: no parameter, or a string that any text fits
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_no_generated_request_gets_a_server_error(app_and_ids):
    app, real = app_and_ids
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    sent: Counter[str] = Counter()
    for operation in (result.ok() for result in schema.get_all_operations()):
        for mode in GenerationMode:
            hunt(operation, mode, real, sent)
    print(f"\nschemathesis: {sum(sent.values())} requests: " + ", ".join(f"{k} {v}" for k, v in sorted(sent.items())))
    assert len(sent) == 19 and sum(sent.values()) >= 900
