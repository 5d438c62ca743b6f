"""Tables: formatting, arrows, bold, captions, escaping; the LaTeX compiles with pdflatex."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_report_cells import standard_run, write_cell

import vaebench
from vaebench.report.content import collect, table_sources
from vaebench.report.stats import aggregate
from vaebench.report.tables import (
    build_table,
    escape_latex,
    format_mean_std,
    header,
    latex_document,
    to_html,
    to_latex,
    to_markdown,
)

ORDER = ["pca", "ae", "noisy", "vae_x"]


@pytest.fixture
def rep(tmp_path: Path):
    return collect([standard_run(tmp_path)], baseline="ae")


def table(rep, source: str = "reconstruction", **kw):
    metrics = dict(table_sources(rep, "toy"))[source]
    return build_table(rep.agg, ["toy"], rep.models, metrics, name=f"toy-{source}",
                       title=f"toy: {source}", baseline=rep.baseline, **kw)  # fmt: skip


def test_header_arrows_and_units() -> None:
    assert header("psnr", "dB", True) == "psnr ↑ [dB]"
    assert header("mse", "per pixel", False) == "mse ↓ [per pixel]"
    assert header("n_params", "", None) == "n_params"


def test_format_mean_std_precision() -> None:
    assert format_mean_std(0.0123456, 0.00123, 3, 4) == "0.0123 ± 0.0012"
    assert format_mean_std(19.0, 1.0, 3, 2) == "19.00 ± 1.00"
    assert format_mean_std(19.0, float("nan"), 1, 2) == "19.00"  # one seed: no spread
    assert format_mean_std(float("nan"), 0.1, 3, 2) == "–"
    assert format_mean_std(704.0, 0.0, 3, 0, descriptive=True) == "704"
    assert format_mean_std(-0.0001, 0.0, 3, 2) == "0.00 ± 0.00"  # no "-0.00"


def test_column_order_groups_and_hidden_standard_errors(rep) -> None:
    sources = table_sources(rep, "toy")
    assert [s for s, _ in sources] == ["reconstruction", "acai", "throughput"]
    assert dict(sources)["acai"] == ["smoothness"]  # smoothness_se is left to the CSV
    assert dict(sources)["throughput"] == ["encode_samples_per_s", "n_params"]  # descriptive last
    assert rep.models == [*ORDER, "broken"]  # the order the run asked for
    assert table(rep).rows == ORDER  # the model whose only cell failed has no row
    assert "broken" not in set(rep.agg.model)


def test_markdown_table(rep) -> None:
    md = to_markdown(table(rep))
    lines = md.splitlines()
    assert lines[0] == "| model | mse ↓ \\[per pixel\\] | psnr ↑ \\[dB\\] |"
    assert lines[1] == "|:--|--:|--:|"
    rows = {line.split(" | ")[0][2:]: line for line in lines[2:6]}
    assert list(rows) == ["pca", "ae", "noisy", "vae\\_x"]  # underscore escaped
    assert "| **0.0120 ± 0.0020** |" in rows["ae"]
    assert "| **0.0123 ± 0.0035** |" in rows["noisy"]  # not significantly worse: bold
    assert "0.0300 ± 0.0000†" in rows["pca"] and "**0.0300" not in rows["pca"]
    assert "0.0410 ± 0.0010†" in rows["vae\\_x"]
    assert "**19.00 ± 1.00**" in rows["ae"] and "**19.00 ± 1.80**" in rows["noisy"]
    caption = lines[-1]
    assert "Mean ± standard deviation (ddof = 1) over 3 seeds" in caption
    assert "paired t-test over seeds" in caption and "α = 0.05" in caption
    assert "† significantly different from the baseline ae" in caption


def test_descriptive_column_has_no_arrow_and_no_bold(rep) -> None:
    md = to_markdown(table(rep, "throughput"))
    head, _, *rows = md.splitlines()
    assert head.endswith("| n\\_params |")
    assert all(not r.rstrip(" |").endswith("**") for r in rows[:4])
    assert rows[0].endswith("| 100 |")  # constant over seeds: no "± 0"


def test_ci_interval(rep) -> None:
    md = to_markdown(table(rep, interval="ci"))
    # ae mse: half-width t_{0.975,2} * 0.002 / sqrt(3) = 0.00497
    assert "**0.0120 ± 0.0050**" in md
    assert "95 % t-based confidence interval over 3 seeds" in md


def test_single_seed_caption_says_no_test(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_cell(run, "a", "toy", 0, {"mse": 0.10})
    write_cell(run, "b", "toy", 0, {"mse": 0.11})
    agg = aggregate(vaebench.load_results(run))
    t = build_table(agg, ["toy"], ["a", "b"], ["mse"], name="t", title="toy")
    md = to_markdown(t)
    assert "| a | **0.1000** |" in md and "| b | 0.1100 |" in md
    assert "single seed" in md and "no significance test is possible" in md
    assert "paired" not in md


def test_welch_named_when_seeds_differ(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for s, v in ((0, 0.10), (1, 0.12)):
        write_cell(run, "a", "toy", s, {"mse": v})
    for s, v in ((2, 0.20), (3, 0.21), (4, 0.19)):
        write_cell(run, "b", "toy", s, {"mse": v})
    agg = aggregate(vaebench.load_results(run))
    md = to_markdown(build_table(agg, ["toy"], ["a", "b"], ["mse"], name="t", title="toy"))
    assert "Welch's t-test" in md and "paired" not in md
    assert "2/3 seeds" not in md and "n=2" in md  # fewer seeds are flagged per entry


def test_latex_table(rep) -> None:
    tex = to_latex(table(rep))
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"vae\_x &" in tex
    assert r"\textbf{\boldmath 0.0120 $\pm$ 0.0020}" in tex
    assert r"mse $\downarrow$ & psnr $\uparrow$" in tex
    assert r"{\scriptsize [per pixel]}" in tex
    assert r"0.0300 $\pm$ 0.0000$^\dagger$" in tex
    assert r"\label{tab:vaebench-toy-reconstruction}" in tex
    assert "±" not in tex and "↓" not in tex and "†" not in tex


def test_escape_latex() -> None:
    assert escape_latex("a_b & 50% $x #1 {y} ~^\\") == (
        r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    assert escape_latex("×10⁻³") == r"$\times$10\textsuperscript{-3}"
    assert escape_latex("β-VAE, α = 0.05") == r"$\beta$-VAE, $\alpha$ = 0.05"
    assert escape_latex("x₁ ★") == r"x\textsubscript{1} {[}U+2605{]}"
    # no ASCII form: the code point, so that different names never print alike (once "??")
    assert escape_latex("模型") == "{[}U+6A21{]}{[}U+578B{]}" != escape_latex("网络")
    assert escape_latex("данные") != escape_latex("модель")


def test_html_table(rep) -> None:
    html = to_html(table(rep))
    assert "<b>0.0120 ± 0.0020</b>" in html
    assert "<sup>†</sup>" in html
    assert "<caption>toy: reconstruction." in html
    assert "<th>mse ↓<br><small>[per pixel]</small></th>" in html


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(rep, tmp_path: Path) -> None:
    tables = [table(rep, s) for s in ("reconstruction", "acai", "throughput")]
    agg = rep.agg.copy()
    agg.loc[agg.metric == "mse", "unit"] = "×10⁻³ µm²"
    agg.loc[agg.model == "noisy", "model"] = "β-vae_2 & co"
    agg.loc[agg.model == "pca", "model"] = "模型"  # a row that starts with its code point
    models = [{"noisy": "β-vae_2 & co", "pca": "模型"}.get(m, m) for m in rep.models]
    weird = build_table(agg, ["toy"], models, ["mse"], name="w",
                        title="odd_name & 100% {x} #1 é", baseline="ae")  # fmt: skip
    doc = tmp_path / "tables.tex"
    doc.write_text(latex_document([*tables, weird]), encoding="utf-8")
    assert "{[}U+6A21{]}{[}U+578B{]}" in doc.read_text(encoding="utf-8")
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000
