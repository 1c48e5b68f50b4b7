"""Study specs: the example studies load; a bad spec reports every problem with its field."""

from pathlib import Path

import pytest

from causal_core.errors import SpecError
from causal_core.spec import load_spec, parse_spec

STUDIES = sorted((Path(__file__).resolve().parents[2] / "conf" / "studies").glob("*.yaml"))

GOOD = """
name: s1
data: {table: db.t, partition_column: d, unit_id: u}
graph: |
  age -> t -> y
  age -> y
treatment: t
outcome: y
encode: {age: [age, age * age]}
estimators: [ols, {ipw: {trim: 0.02}}]
bootstrap: {replicates: 200, seed: 5}
schedule: "@daily"
"""


def test_example_studies_load():
    assert len(STUDIES) >= 4
    specs = [load_spec(p) for p in STUDIES]
    assert {s.design for s in specs} == {"experiment", "observational"}
    for s in specs:
        assert s.name == Path(s.source).stem
        assert set(s.treatment) <= set(s.graph.observed)


def test_good_spec_fields():
    s = parse_spec(GOOD)
    assert s.treatment == ("t",) and s.outcome == ("y",)
    assert s.encoding("age") == ("age", "age * age") and s.encoding("t") == "as_is"
    assert [e.name for e in s.estimators] == ["ols", "ipw"]
    assert s.estimators[1].options_dict() == {"trim": 0.02}
    assert s.bootstrap.replicates == 200 and s.bootstrap.seed == 5
    assert s.treatment_values.natural and s.treatment_values.contrasts() == ((1, 0),)


def test_spec_hash_ignores_comments_and_order():
    a = parse_spec(GOOD)
    b = parse_spec("# a comment\n" + GOOD.replace("treatment: t\noutcome: y", "outcome: y\ntreatment: t"))
    c = parse_spec(GOOD.replace("seed: 5", "seed: 6"))
    assert a.spec_hash() == b.spec_hash() != c.spec_hash()


def test_every_problem_is_reported_with_its_field():
    bad = """
name: "bad name!"
data: {table: t, path: p, nulls: maybe}
graph: "a -> b -> a"
treatment: t
outcome: [y]
target: late
estimators: [ols, magic]
bootstrap: {replicates: -1}
schedule: "every day"
colour: blue
"""
    with pytest.raises(SpecError) as info:
        parse_spec(bad, source="bad.yaml")
    fields = [f for f, _ in info.value.problems]
    for f in ("name", "data", "data.nulls", "graph", "target", "estimators.magic", "bootstrap.replicates",
              "schedule", "colour"):
        assert f in fields, f
    assert "bad.yaml" in str(info.value) and "cycle" in str(info.value)


def test_unknown_variables_and_typos_get_suggestions():
    with pytest.raises(SpecError, match=r"treatment.*'tt' is not an observed variable.*did you mean 't'"):
        parse_spec(GOOD.replace("treatment: t", "treatment: tt"))
    with pytest.raises(SpecError, match="did you mean 'outcome'"):
        parse_spec(GOOD.replace("outcome: y", "outcome: y\noutcomes: y"))


def test_malformed_yaml_names_the_line():
    with pytest.raises(SpecError, match=r"malformed YAML at line 3, column 1"):
        parse_spec("name: x\ngraph: [unclosed\n")


def test_experiment_without_graph_gets_treatment_to_metric_edges():
    s = parse_spec("name: e\ndesign: experiment\ndata: {table: t}\ntreatment: arm\noutcome: [a, b]\n"
                   "treatment_values: {arms: [c, t1, t2], control: c}\n")
    assert set(s.graph.directed) == {("arm", "a"), ("arm", "b")}
    assert s.treatment_values.contrasts() == (("t1", "c"), ("t2", "c"))


def test_unknown_estimator_option_is_caught_before_spark():
    with pytest.raises(SpecError, match=r"estimators.stratification.strata.*n_strata"):
        parse_spec(GOOD.replace("[ols, {ipw: {trim: 0.02}}]", "[ols, {stratification: {strata: 5}}]"))


def test_yes_and_no_stay_the_text_the_user_wrote():
    """YAML 1.1 reads yes/no/on/off as booleans ('promo: True vs False'); specs are read
    with YAML 1.2 booleans, so only true/false are booleans."""
    spec = parse_spec("name: s\ndata: {table: t}\ngraph: 'x -> promo -> y; x -> y'\ntreatment: promo\n"
                      "outcome: y\ntreatment_values: {treated: yes, control: no}\n")
    assert spec.treatment_values.treated == "yes" and spec.treatment_values.control == "no"
    arms = parse_spec("name: s\ndesign: experiment\ndata: {table: t}\ntreatment: v\noutcome: y\n"
                      "treatment_values: {arms: [off, on, true], control: off}\n")
    assert arms.treatment_values.arms == ("off", "on", True)
    exact = parse_spec("name: s\ndata: {table: t, exact_sums: true}\ngraph: 'x -> y'\ntreatment: x\noutcome: y\n")
    assert exact.data.exact_sums is True
