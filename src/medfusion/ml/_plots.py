"""PNG plots of an evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from medfusion.ml._evaluate import Evaluation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from medfusion.ml._explain import Explanation

__all__ = ["kaplan_meier", "plot_evaluation", "plot_explanation", "plot_training_curves"]


def _figure() -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    return plt.subplots(figsize=(5, 4), dpi=100)


def _png(fig: Figure) -> bytes:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival: event times and the survival just after each."""
    points = np.unique(time[event.astype(bool)])
    at_risk = np.array([np.sum(time >= t) for t in points], dtype=float)
    deaths = np.array([np.sum((time == t) & event.astype(bool)) for t in points], dtype=float)
    return points, np.cumprod(1 - deaths / np.maximum(at_risk, 1))


def _roc_pr(ev: Evaluation) -> dict[str, bytes]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(ev.y, ev.score)
    fig, ax = _figure()
    ax.plot(fpr, tpr, label=f"AUROC {ev.metrics['auroc'].value:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC curve")
    ax.legend(loc="lower right")
    plots = {"roc": _png(fig)}
    precision, recall, _ = precision_recall_curve(ev.y, ev.score)
    fig, ax = _figure()
    ax.plot(recall, precision, label=f"AUPRC {ev.metrics['auprc'].value:.3f}")
    ax.axhline(float(np.mean(ev.y)), ls="--", color="grey")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
    ax.legend(loc="lower left")
    plots["pr"] = _png(fig)
    plots["calibration"] = _calibration(ev)
    return plots


def _calibration(ev: Evaluation, bins: int = 10) -> bytes:
    which = np.minimum((ev.score * bins).astype(int), bins - 1)
    used = np.bincount(which, minlength=bins) > 0
    mean_p = (
        np.bincount(which, weights=ev.score, minlength=bins)[used] / np.bincount(which, minlength=bins)[used]
    )
    mean_y = np.bincount(which, weights=ev.y, minlength=bins)[used] / np.bincount(which, minlength=bins)[used]
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="ideal")
    ax.plot(mean_p, mean_y, "o-", label="model")
    slope = ev.metrics["calibration_slope"].value
    ax.set(
        xlabel="predicted probability",
        ylabel="observed frequency",
        title=f"Calibration (slope {slope:.2f}, ECE {ev.metrics['ece'].value:.3f})",
    )
    ax.legend(loc="upper left")
    return _png(fig)


def _confusion(ev: Evaluation) -> bytes:
    k = len(ev.classes)
    pred = np.argmax(ev.score, axis=1) if ev.score.ndim == 2 else (ev.score >= 0.5).astype(int)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (ev.y.astype(int), pred), 1)
    fig, ax = _figure()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        shade = "white" if count > matrix.max() / 2 else "black"  # readable on dark cells
        ax.text(j, i, str(count), ha="center", va="center", color=shade)
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xticklabels=ev.classes,
        yticklabels=ev.classes,
        xlabel="predicted",
        ylabel="observed",
        title="Confusion matrix",
    )
    return _png(fig)


def _regression(ev: Evaluation) -> dict[str, bytes]:
    fig, ax = _figure()
    ax.scatter(ev.score, ev.y - ev.score, s=10, alpha=0.6)
    ax.axhline(0, color="grey", ls="--")
    ax.set(xlabel="predicted", ylabel="residual (observed - predicted)", title="Residuals")
    plots = {"residuals": _png(fig)}
    fig, ax = _figure()
    ax.scatter(ev.score, ev.y, s=10, alpha=0.6)
    low, high = float(min(ev.y.min(), ev.score.min())), float(max(ev.y.max(), ev.score.max()))
    ax.plot([low, high], [low, high], "--", color="grey")
    ax.set(xlabel="predicted", ylabel="observed", title="Predicted vs observed")
    plots["predicted_vs_observed"] = _png(fig)
    return plots


def _km_groups(ev: Evaluation, groups: int = 3) -> bytes:
    time, event = ev.y[:, 0], ev.y[:, 1]
    cuts = np.quantile(ev.score, np.linspace(0, 1, groups + 1)[1:-1])
    which = np.searchsorted(cuts, ev.score, side="right")
    fig, ax = _figure()
    for group, name in enumerate(["low", "medium", "high"][:groups]):
        members = which == group
        if not members.any():
            continue
        points, surv = kaplan_meier(time[members], event[members])
        ax.step(np.r_[0, points], np.r_[1, surv], where="post", label=f"{name} risk (n={members.sum()})")
    ax.set(xlabel="time", ylabel="survival", ylim=(0, 1.02), title="Kaplan-Meier by predicted risk tertile")
    ax.legend(loc="lower left")
    return _png(fig)


def plot_evaluation(ev: Evaluation) -> dict[str, bytes]:
    """PNG bytes of every plot that fits the task, keyed by a file-name stem."""
    if ev.task == "regression":
        return _regression(ev)
    if ev.task == "binary":
        return {**_roc_pr(ev), "confusion_matrix": _confusion(ev)}
    if ev.task == "multiclass":
        return {"confusion_matrix": _confusion(ev)}
    return {"kaplan_meier_by_risk": _km_groups(ev)}


def _bars(names: list[str], values: np.ndarray, title: str, xlabel: str, top: int = 15) -> bytes:
    # The largest |value| on top; long tails are cut so that labels stay readable.
    order = np.argsort(-np.abs(values), kind="stable")[:top][::-1]
    fig, ax = _figure()
    colors = ["#c0392b" if values[i] > 0 else "#2e86c1" for i in order]
    ax.barh([names[i] for i in order], values[order], color=colors)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return _png(fig)


def plot_explanation(explanation: Explanation, *, max_rows: int = 20) -> dict[str, bytes]:
    """PNG bar charts: ``global_importance`` and ``row_<n>`` for the first ``max_rows`` rows."""
    names = list(explanation.features)
    importance = explanation.global_importance()
    plots = {
        "global_importance": _bars(
            names,
            np.array([importance[n] for n in names]),
            "Global importance (mean |contribution|)",
            f"mean |contribution| ({explanation.output})",
        )
    }
    rows = explanation.rows or tuple(range(len(explanation.predictions)))
    for row, prediction, contribution in list(
        zip(rows, explanation.predictions, explanation.contributions, strict=True)
    )[:max_rows]:
        plots[f"row_{row}"] = _bars(
            names,
            np.asarray(contribution),
            f"Row {row}: {prediction:.4g} = base {explanation.base_value:.4g} + contributions",
            f"contribution ({explanation.output})",
        )
    return plots


def plot_training_curves(histories: list[dict[str, Any]]) -> bytes:
    """Loss (training and validation) and validation score per epoch, one line per member.

    Parameters
    ----------
    histories
        :meth:`medfusion.ml._torch.History.as_dict` of each trained network.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    for index, history in enumerate(histories):
        epochs = [e["epoch"] for e in history["epochs"]]
        colour = f"C{index % 10}"
        label = f"member {index + 1}" if len(histories) > 1 else ""
        loss_ax.plot(
            epochs, [e["train_loss"] for e in history["epochs"]], color=colour, label=f"train {label}"
        )
        val = [e["val_loss"] for e in history["epochs"]]
        if any(v is not None for v in val):
            loss_ax.plot(epochs, val, color=colour, linestyle="--", label=f"validation {label}")
        score = [e["val_score"] for e in history["epochs"]]
        if any(v is not None for v in score):
            score_ax.plot(epochs, score, color=colour, label=label or None)
            best = history["best_epoch"]
            if best:
                score_ax.axvline(best, color=colour, linestyle=":", linewidth=1)
        score_ax.set_ylabel(f"validation {history['score_name']}")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Training curves")
    loss_ax.legend(fontsize=7)
    score_ax.set(xlabel="epoch", title="Validation score (dotted: kept epoch)")
    if score_ax.get_legend_handles_labels()[0]:
        score_ax.legend(fontsize=7)
    elif not score_ax.lines:  # a fixed schedule: no validation split, nothing to score
        score_ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=score_ax.transAxes)
    return _png(fig)
