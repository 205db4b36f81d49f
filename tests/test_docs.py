"""The docs list every metric the code writes."""

from pathlib import Path

from rl_transfer.comparison import metric_keys

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_outputs_doc_lists_every_summary_metric():
    text = (DOCS / "outputs.md").read_text()
    missing = [key for key, _, _ in metric_keys() if f"`{key}`" not in text]
    assert not missing, f"docs/outputs.md does not list {missing}"


def test_metrics_doc_names_every_metric_and_accounting():
    text = (DOCS / "metrics.md").read_text().lower()
    for name in (
        "jumpstart",
        "asymptotic gain",
        "auc gain",
        "transfer ratio",
        "time to threshold",
        "speed-up",
        "forward transfer",
        "total-time",
        "amortized",
        "verdict",
    ):
        assert name in text, name


def test_envs_doc_is_generated_from_the_code():
    from envs.docs import render

    assert (DOCS / "envs.md").read_text() == render(), "run: python -m envs.docs > docs/envs.md"


def test_methods_doc_is_generated_from_the_code():
    from rl_transfer.methods.docs import support_matrix

    text = (DOCS / "methods.md").read_text()
    assert text == support_matrix(), "run: python -m rl_transfer.methods > docs/methods.md"
