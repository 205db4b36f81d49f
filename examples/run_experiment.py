"""Run a transfer experiment from Python: register a pair, run it, print the tables.

.venv/bin/python examples/run_experiment.py            # about 2 minutes on 2 cores
"""

from rl_transfer import Experiment, register_pair


def main() -> None:
    register_pair(
        "example-heavier-cart",
        source=("cartpole", {}),
        target=("cartpole", {"masscart": 3.5}),  # env family + its physical parameters
        threshold=475.0,  # time-to-threshold level; R_max: CartPole's 500; R_min is measured
        budgets={"ppo": {"source_steps": 30_000, "target_steps": 40_000, "eval_every": 2_000}},
    )
    result = Experiment(
        pairs=["example-heavier-cart"],
        algo="ppo",
        methods=["policy", "value"],
        seeds=3,
        out="runs/example-heavier-cart",
    ).run()
    print(result.table())
    print("verdicts:", {r["method"]: r["verdict"] for r in result.summary["results"]})
    print("folder:", result.out)


if __name__ == "__main__":  # runs happen in worker processes, which import this file again
    main()
