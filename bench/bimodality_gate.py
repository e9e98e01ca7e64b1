"""The bimodality gate's critical values (`batch_evidence.GATE_CRITICAL`): at each batch size, the highest of
the 95 % quantiles of the gate's likelihood-ratio statistic on one-mode batches drawn from a normal, a
gamma(2) and a lognormal(σ 0.5) distribution, simulated with a fixed seed; then, as a check with fresh draws,
the share of one-mode batches of each kind the table in calibration.py lets through.

    PYTHONPATH=src python bench/bimodality_gate.py [--batches 1000]
"""

from __future__ import annotations

import argparse

import numpy as np

from anomalens.batch_evidence import GATE_FALSE_MOVES, gate_critical, gate_statistic

SIZES = (16, 24, 32, 48, 64, 128)  # beyond: the last (the quantiles fall with size)
NULLS = {
    "normal": lambda rng, shape: rng.normal(10.0, 1.0, shape),
    "gamma(2)": lambda rng, shape: rng.gamma(2.0, 1.0, shape),
    "lognormal(0.5)": lambda rng, shape: rng.lognormal(0.0, 0.5, shape),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--check", type=int, default=1000, help="batches per null in the check")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = []
    for n in SIZES:
        quantiles = []
        for name, draw in NULLS.items():
            statistic = np.concatenate([gate_statistic(draw(rng, (500, n))) for _ in range(-(-args.batches // 500))])
            quantiles.append(float(np.quantile(statistic, 1 - GATE_FALSE_MOVES)))
            print(f"n={n}, {name}: 95 % quantile {quantiles[-1]:.2f}", flush=True)
        table.append((n, round(max(quantiles) + 0.5, 2)))  # + 0.5: the simulation's own sampling error
    print("GATE_CRITICAL =", tuple(table))
    check = np.random.default_rng(1)
    for name, draw in NULLS.items():
        for n in (16, 64, 256):
            passed = np.mean(gate_statistic(draw(check, (args.check, n))) > gate_critical(n))
            print(f"{name}, n={n}: {passed:.1%} taken for two groups (with the table in calibration.py)")


if __name__ == "__main__":
    main()
