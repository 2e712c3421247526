"""Label-free monitoring validated on shifted traffic (issue 22, docs/monitoring.md): for each
cell and each shift of tests/shifts.py, a real server gets the shifted test digits WITHOUT labels
(one version per shift, copies of the cell's newest version), and after every `--step`
predictions the status RPC says whether a detector has fired. Reports per shift and cell: the
true accuracy (labels held back), the estimated accuracy with its interval, which detectors
fired and after how many predictions.

    python bench/monitoring_shifts.py --models DIR [--cells rnn,lstm,gru] [--predictions 1000] [--step 50]

DIR holds versions the trainer wrote with a reference profile, best with a validation split
(`digits-train --validation-split 0.2`), so the reference is not the test digits sent here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from digits import DigitsClient
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.conftest import MNIST_NPZ
from tests.serverproc import start_server
from tests.shifts import SHIFTS, shifted_stream


def newest(folder: Path) -> Path:
    return max((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def repository(models: Path, cells: list[str]) -> Path:
    """A repository with versions 1..len(SHIFTS) of each cell, all served."""
    root = Path(tempfile.mkdtemp(prefix="monitoring-shifts-"))
    for cell in cells:
        source = newest(models / cell)
        for version in range(1, len(SHIFTS) + 1):
            shutil.copytree(source, root / cell / str(version))
    (root / "config.yaml").write_text("models:\n" + "".join(f"  {c}:\n    version_policy: all\n" for c in cells))
    return root


def status(target: str, cell: str, version: int) -> pb.VersionMonitoring:
    with grpc.insecure_channel(target) as channel:
        reply = pb_grpc.DigitClassifierStub(channel).GetModelStatus(pb.GetModelStatusRequest(name=cell), timeout=30)
    return next(v.monitoring for v in reply.versions if v.version == version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--predictions", type=int, default=1000)
    parser.add_argument("--step", type=int, default=50)
    args = parser.parse_args()
    cells = args.cells.split(",")
    with np.load(MNIST_NPZ) as data:
        pool = data["x_test"], data["y_test"]
    root = repository(args.models, cells)
    server = start_server(root, "--model-config", str(root / "config.yaml"), "--default-model", cells[0],
                          "--monitoring-images-per-request", "0")  # every image watched, as with single-image calls
    print(f"{args.predictions} unlabelled predictions per shift and cell (test digits), status read every "
          f"{args.step}; interval: 95%, assumes calibration holds\n")
    print("| cell | shift | true accuracy | estimated accuracy | detectors fired (in order of firing) | predictions to first alarm |")
    print("|---|---|---|---|---|---|")
    try:
        with DigitsClient(server.target, timeout=60) as client:
            for cell in cells:
                for version, name in enumerate(SHIFTS, start=1):
                    images, labels = shifted_stream(name, *pool, args.predictions, seed=version)
                    right, first, order = 0, None, []
                    for start in range(0, args.predictions, args.step):
                        batch = client.classify_batch(images[start:start + args.step], cell, version=version)
                        right += int((np.array(batch.digits) == labels[start:start + args.step]).sum())
                        watched = status(server.target, cell, version)
                        fired = [s.signal for s in watched.signals if s.alarms]
                        order += [f for f in fired if f not in order]
                        if fired and first is None:
                            first = start + args.step
                    fired_text = ", ".join(order) if order else "none"
                    print(f"| {cell} | {name} | {right / args.predictions:.3f} | {watched.estimated_accuracy:.3f} "
                          f"[{watched.estimated_low:.3f}, {watched.estimated_high:.3f}] | {fired_text} | "
                          f"{first if first is not None else '-'} |", flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
