"""Power-law fits, grid slices and the scaling figure (no Ray)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline.scaling import (
    GRIDS,
    PowerLawFit,
    ScalingGrid,
    ScalingPoint,
    fit_axes,
    fit_power_law,
    fits_to_json,
    grid,
    plot_scaling,
)

A, ALPHA, C = 3.0, 0.3, 0.5
PAPER_DBS = [2**k for k in range(3, 11)]  # 8 … 1024


def _law(x, a=A, alpha=ALPHA, c=C):
    return a * np.asarray(x, dtype=float) ** (-alpha) + c


def test_fit_recovers_the_parameters_of_exact_points():
    fit = fit_power_law(PAPER_DBS, _law(PAPER_DBS))
    np.testing.assert_allclose([fit.A, fit.alpha, fit.C], [A, ALPHA, C], rtol=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9) and fit.n == len(PAPER_DBS)


def test_fit_recovers_the_parameters_under_two_percent_noise():
    x = np.geomspace(8, 1024, 30)
    noise = 1 + 0.02 * np.random.default_rng(0).standard_normal(len(x))
    fit = fit_power_law(x, _law(x) * noise)
    np.testing.assert_allclose([fit.A, fit.alpha], [A, ALPHA], rtol=0.15)
    np.testing.assert_allclose(fit.C, C, rtol=0.25)
    assert fit.r2 > 0.95


def test_fit_without_an_irreducible_loss_finds_c_near_zero():
    fit = fit_power_law(PAPER_DBS, _law(PAPER_DBS, c=0.0))
    assert fit.alpha == pytest.approx(ALPHA, rel=1e-3) and fit.C < 1e-3


def test_a_loss_that_grows_with_x_still_gives_a_bounded_fit():
    fit = fit_power_law([1, 2, 3], [0.30, 0.35, 0.32])
    assert fit.A > 0 and fit.alpha >= 0 and 0 <= fit.C <= 0.30
    assert all(math.isfinite(v) for v in (fit.A, fit.alpha, fit.C, fit.r2))


@pytest.mark.parametrize(
    ("x", "loss", "says"),
    [
        ([8, 16], [1.0, 0.9], "≥ 3 distinct x"),
        ([8, 8, 16, 16], [1.0, 1.1, 0.9, 0.8], "≥ 3 distinct x"),
        ([0, 8, 16], [1.0, 0.9, 0.8], "x must be finite and > 0"),
        ([-1, 8, 16], [1.0, 0.9, 0.8], "x must be finite and > 0"),
        ([4, 8, 16], [1.0, 0.0, 0.8], "loss must be finite and > 0"),
        ([4, 8, 16], [1.0, 0.8], "equal-length"),
    ],
)
def test_fit_rejects_what_it_cannot_fit(x, loss, says):
    with pytest.raises(ConfigError, match=says):
        fit_power_law(x, loss)


def _grid_points(num_dbs=(8, 16, 32), steps=(100, 200, 400), tokens_per_step=1000):
    """Points of L = 2·N^-0.2 + 3·T^-0.3 + 0.4 over a grid."""
    return [
        ScalingPoint(num_dbs=n, steps=s, tokens=s * tokens_per_step,
                     val_loss=2 * n**-0.2 + 3 * (s * tokens_per_step) ** -0.3 + 0.4)
        for n in num_dbs for s in steps
    ]  # fmt: skip


def test_fit_axes_fits_databases_at_the_most_tokens_and_tokens_at_the_most_databases():
    fits = fit_axes(_grid_points())
    assert set(fits) == {
        "databases", "databases@tokens=100000", "databases@tokens=200000",
        "tokens", "tokens@num_dbs=8", "tokens@num_dbs=16",
    }  # fmt: skip
    databases, tokens = fits["databases"], fits["tokens"]
    assert isinstance(databases, PowerLawFit) and isinstance(tokens, PowerLawFit)
    # Along one axis the other term is a constant, absorbed into C.
    np.testing.assert_allclose(
        [databases.alpha, databases.C, tokens.alpha, tokens.C, fits["tokens@num_dbs=8"].C],
        [0.2, 3 * 400_000**-0.3 + 0.4, 0.3, 2 * 32**-0.2 + 0.4, 2 * 8**-0.2 + 0.4],
        rtol=1e-3,
    )


def test_fit_axes_gives_the_reason_for_a_slice_too_short_to_fit():
    fits = fit_axes(_grid_points(num_dbs=(2, 4), steps=(10, 20, 40)))
    assert "≥ 3 distinct x" in fits["databases"]
    assert isinstance(fits["tokens"], PowerLawFit)
    written = fits_to_json(fits)
    assert set(written["databases"]) == {"skipped"}
    assert set(written["tokens"]) == {"A", "alpha", "C", "r2", "n"}


def test_plot_writes_a_png_that_is_not_blank(tmp_path):
    import matplotlib.image

    points = _grid_points()
    path = tmp_path / "scaling.png"
    plot_scaling(points, fit_axes(points), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10


def test_plot_draws_a_grid_without_any_fit(tmp_path):
    points = _grid_points(num_dbs=(2, 4), steps=(10, 30))
    path = plot_scaling(points, fit_axes(points), tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 0 and path.endswith("scaling.png")


def test_named_grids_are_those_of_the_brief_and_the_paper():
    tiny = grid("tiny")
    # Three values per axis: the least a 3-parameter fit along either axis needs.
    assert len(set(tiny.num_dbs)) == len(set(tiny.steps)) == 3
    assert len(tiny.points()) == 9
    paper = grid("paper")
    assert paper.num_dbs[0] == 8 and paper.num_dbs[-1] == 1024 and len(paper.num_dbs) == 8
    assert paper.steps[0] == 4000 and paper.steps[-1] == 256_000
    assert paper.recipe == "plurel-paper" and paper.total_dbs == 1024 + paper.holdout
    assert set(GRIDS) == {"tiny", "paper"}


@pytest.mark.parametrize(
    "fields",
    [{"num_dbs": ()}, {"num_dbs": (0, 2)}, {"steps": (10, 10)}, {"holdout": 0},
     {"overrides": {"steps": 5}}],
)  # fmt: skip
def test_grid_rejects_bad_fields(fields):
    base = {"num_dbs": (2, 4), "steps": (10, 30), "recipe": "tiny"}
    with pytest.raises(ConfigError, match="ScalingGrid"):
        ScalingGrid(**{**base, **fields})


def test_unknown_grid_names_the_choices():
    with pytest.raises(ConfigError, match="paper"):
        grid("huge")
