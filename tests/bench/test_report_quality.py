"""The report's set-quality table: readable columns, the held-out real reference row."""

from augengine.bench.report import quality_table


def _v(x, ci=None):
    return {"value": x, "ci": ci}


def test_quality_table_has_readable_columns_and_a_reference_row():
    m = {"n.synthetic": _v(300.0), "n.test": _v(150.0),
         "synthetic.overall.fd": _v(117.9), "synthetic.overall.kid": _v(0.3117), "synthetic.overall.kid.std": _v(0.0235),
         "synthetic.overall.kid.subset_size": _v(150.0),
         "synthetic.overall.precision": _v(0.282, [0.233, 0.336]), "synthetic.overall.recall": _v(0.077),
         "synthetic.overall.density": _v(0.122), "synthetic.overall.coverage": _v(0.052),
         "memorisation.near_copies": _v(2.0),
         "reference.overall.fd": _v(26.5), "reference.overall.kid": _v(0.0528), "reference.overall.kid.std": _v(0.0263),
         "reference.overall.precision": _v(0.914), "reference.overall.recall": _v(0.905),
         "reference.overall.density": _v(0.989), "reference.overall.coverage": _v(0.435),
         "memorisation.reference_real_test.n": _v(150.0), "memorisation.reference_real_test.near_copy_fraction": _v(0.02)}
    header, body = quality_table([{"arm": "acgan", "amount_label": "x0.25", "metrics": m}])
    assert header == ["arm", "amount", "N", "FD", "KID ×10³ ± std", "precision", "recall", "density", "coverage",
                      "near-copies"]
    assert not any("." in h for h in header)  # no raw metric keys
    assert body[0] == ["acgan", "x0.25", "300", "117.900", "311.70 ± 23.50", "0.282 (0.233–0.336)", "0.077",
                       "0.122", "0.052", "2"]
    assert body[1][0] == "held-out real test (reference)" and body[1][2] == "150" and body[1][4] == "52.80 ± 26.30"
    assert body[1][-1] == "3"


def test_quality_table_without_reference_or_kid_std():
    m = {"synthetic.overall.kid": _v(0.001), "synthetic.overall.fd": _v(3.0)}
    header, body = quality_table([{"arm": "a", "amount_label": "+10", "metrics": m}])
    assert len(body) == 1 and body[0][4] == "1.00" and body[0][2] == "–" and body[0][-1] == "–"
