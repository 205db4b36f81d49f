"""How a large source travels to Ray tasks (run by hand; results in docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_shipping.py --transitions 1000000 --tasks 4

Builds a source folder holding a DQN replay buffer of ``--transitions`` CartPole transitions
(random contents: the size is what matters) beside its model.zip, then measures what
``--backend ray`` does with it: the driver packs the folder (``bundles.pack``) and puts it in the
object store once; ``--tasks`` tasks on a local Ray node receive the reference and unpack it
into the node's source folder (``bundles.unpack_once``). Prints one line per step: seconds,
bytes, each task's peak resident memory, and how many tasks wrote the files (1: the node's
tasks shared one copy on disk, and each read the object store's copy without its own).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_source(folder: Path, transitions: int) -> None:
    """A finished source folder (run.json done) with a full replay buffer."""
    from stable_baselines3 import DQN

    from rl_transfer.io import write_json

    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=transitions, learning_starts=0, seed=0)
    buf = model.replay_buffer
    rng = np.random.default_rng(0)
    buf.observations[:] = rng.standard_normal(buf.observations.shape, dtype=np.float32)
    buf.next_observations[:] = rng.standard_normal(buf.next_observations.shape, dtype=np.float32)
    buf.actions[:] = rng.integers(0, 2, buf.actions.shape)
    buf.rewards[:] = 1.0
    buf.full, buf.pos = True, 0
    folder.mkdir(parents=True)
    model.save(str(folder / "model.zip"))
    model.save_replay_buffer(str(folder / "replay_buffer.pkl"))
    write_json(folder / "run.json", {"kind": "source", "status": "done"})


def task(files: dict, key: str) -> dict:
    """What a target task does with its source before training: unpack once per node."""
    import ray

    from rl_transfer import bundles
    from rl_transfer.runner import _node_sources

    folder = _node_sources() / key
    started = time.perf_counter()
    wrote = bundles.unpack_once(files, folder)
    return {
        "seconds": time.perf_counter() - started,
        "wrote": wrote,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "node": ray.get_runtime_context().get_node_id()[:8],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--tasks", type=int, default=4)
    args = ap.parse_args()
    import ray

    from rl_transfer import bundles
    from rl_transfer.runner import _node_sources

    work = Path(tempfile.mkdtemp(prefix="bench-shipping-"))
    source = work / "source"
    t = time.perf_counter()
    build_source(source, args.transitions)
    print(f"built a source with {args.transitions:,} transitions: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    files = bundles.pack(source)
    size = bundles.n_bytes(files)
    print(f"pack: {time.perf_counter() - t:.2f} s, {size / 2**20:.1f} MiB in {len(files)} files")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        t = time.perf_counter()
        ref = ray.put(files)
        print(f"ray.put (once, by the driver): {time.perf_counter() - t:.2f} s")
        del files
        key = f"bench-{time.time_ns()}"
        remote = ray.remote(num_cpus=1)(task)
        t = time.perf_counter()
        out = ray.get([remote.remote(ref, key) for _ in range(args.tasks)])
        print(f"{args.tasks} tasks given the reference: {time.perf_counter() - t:.2f} s in all")
        for i, o in enumerate(out):
            print(
                f"  task {i} on node {o['node']}: unpack {o['seconds']:.2f} s, wrote the files: "
                f"{o['wrote']}, peak RSS {o['maxrss_mib']:.0f} MiB"
            )
        print(f"tasks that wrote the files: {sum(o['wrote'] for o in out)} of {args.tasks}")
        shutil.rmtree(_node_sources() / key, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
