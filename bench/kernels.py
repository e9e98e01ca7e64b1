"""Which compute kernels this process runs: each BLAS / OpenMP library threadpoolctl finds loaded (after faiss,
numpy, scipy's BLAS, torch and onnxruntime are imported), torch's CPU capability and BLAS, onnxruntime's version.

torch links MKL statically, so threadpoolctl does not list it: its line comes from torch itself."""

from __future__ import annotations

import platform
import re
from pathlib import Path


def cpu() -> dict:
    """The CPU's model name and whether it has AVX-512 (avx512f) and AVX2, from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    found = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    flags = set(found.group(1).split()) if found else set()
    return {
        "model": model.group(1).strip() if model else platform.processor(),
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "amx": any(flag.startswith("amx") for flag in flags),
    }


def kernels() -> dict:
    import faiss  # noqa: F401  (loaded for threadpoolctl to see its bundled OpenBLAS)
    import numpy  # noqa: F401
    import onnxruntime
    import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS loads with linalg)
    import torch
    from threadpoolctl import threadpool_info

    libraries = [
        {
            "library": Path(info["filepath"]).name,
            "internal_api": info.get("internal_api"),
            "version": info.get("version"),
            "architecture": info.get("architecture"),
            "num_threads": info.get("num_threads"),
        }
        for info in threadpool_info()
    ]
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    libraries.append(
        {
            "library": f"torch {torch.__version__} (statically linked, not seen by threadpoolctl)",
            "internal_api": blas.group(1) if blas else "?",
            "version": torch.__config__.show().split("Math Kernel Library Version ")[-1].split("-")[0]
            if "Math Kernel Library" in torch.__config__.show()
            else None,
            "architecture": f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
            "num_threads": torch.get_num_threads(),
        }
    )
    libraries.append(
        {
            "library": f"onnxruntime {onnxruntime.__version__} (MLAS, own dispatch)",
            "internal_api": "mlas",
            "version": onnxruntime.__version__,
            "architecture": None,
            "num_threads": None,
        }
    )
    return {"cpu": cpu(), "libraries": libraries, "faiss": faiss.__version__}


def markdown(report: dict) -> list[str]:
    """The report as a small table, with the CPU above it."""
    machine = report["cpu"]
    lines = [
        f"CPU: {machine['model']}; avx512f {'yes' if machine['avx512f'] else 'no'}, "
        f"avx2 {'yes' if machine['avx2'] else 'no'}, amx {'yes' if machine['amx'] else 'no'}.",
        "",
        "| library | internal_api | version | architecture | num_threads |",
        "|---|---|---|---|---|",
    ]
    for lib in report["libraries"]:
        cells = [lib["library"], lib["internal_api"], lib["version"], lib["architecture"], lib["num_threads"]]
        lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    return lines


if __name__ == "__main__":
    print("\n".join(markdown(kernels())))
