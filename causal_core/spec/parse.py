"""Study specs: the YAML a user writes, parsed once into frozen values.

Every field is validated before anything runs; all problems are reported together, each
with the file, the field and what was expected (``SpecError.problems``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from causal_core.errors import GraphError, SpecError
from causal_core.graph.causal_graph import CausalGraph
from causal_core.moments.bootstrap import BOOTSTRAP_KINDS
from causal_core.spec.experiment import metric_outcomes, with_experiment
from causal_core.spec.types import (  # noqa: F401  (the spec's public values live there)
    TOP_FIELDS, DATA_FIELDS, DESIGNS, TARGETS, FORMATS, NULL_POLICIES, REFUTERS, SCHEDULE_PRESETS, _NAME, _IDENT, DataSpec, TreatmentValues, BootstrapSpec, EstimatorSpec, StudySpec, load_yaml,
)

class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, fieldname: str, message: str) -> None:
        self.items.append((fieldname, message))

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {f}: {m}" for f, m in self.items)
            raise SpecError(f"{self.source}: invalid study spec ({len(self.items)} problem(s)):\n{lines}",
                            tuple(self.items))


def _suggest(word: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _names(value: Any, fieldname: str, problems: _Problems) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    problems.add(fieldname, f"expected a name or a non-empty list of names, got {value!r}")
    return ()


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study YAML file."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: no such study file")
    return parse_spec(p.read_text(), source=str(p))


def parse_spec(text: str, source: str = "<spec>") -> StudySpec:
    """Validate YAML text into a :class:`StudySpec`, reporting every problem at once."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{source}: malformed YAML{where}: {getattr(exc, 'problem', exc)}",
                        (("<yaml>", str(exc)),)) from None
    if not isinstance(doc, dict):
        raise SpecError(f"{source}: a study spec must be a YAML mapping of fields, got {type(doc).__name__}",
                        (("<yaml>", "expected a mapping"),))
    problems = _Problems(source)
    for key in doc:
        if key not in TOP_FIELDS:
            problems.add(str(key), "unknown field" + _suggest(str(key), TOP_FIELDS))
    kwargs = _parse_fields(metric_outcomes(doc), problems)
    problems.raise_if_any()
    return StudySpec(source=source, raw=text, **kwargs)


def _parse_fields(doc: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    out: dict[str, Any] = {}
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.add("name", f"expected a name of letters, digits, '_' or '-', got {name!r}")
    out["name"] = name if isinstance(name, str) else ""
    out["description"] = str(doc.get("description", "") or "")
    design = doc.get("design", "observational")
    if design not in DESIGNS:
        problems.add("design", f"expected one of {DESIGNS}, got {design!r}")
    out["design"] = design if design in DESIGNS else "observational"
    out["treatment"] = _names(doc.get("treatment"), "treatment", problems)
    out["outcome"] = _names(doc.get("outcome"), "outcome", problems)
    out["data"] = _parse_data(doc.get("data"), problems)
    out["derived"] = _parse_derived(doc.get("derived", {}), problems)
    out["graph"] = _parse_graph(doc, out, problems)
    out["treatment_values"] = _parse_treatment_values(doc.get("treatment_values"), out["design"], problems)
    out["encode"] = _parse_encode(doc.get("encode", {}), out["graph"], problems)
    fe = doc.get("fixed_effects")  # many-level categories for ols and iv to absorb
    out["fixed_effects"] = tuple(dict.fromkeys(_names(fe, "fixed_effects", problems))) if fe not in (None, []) else ()
    target = doc.get("target", "ate")
    if target not in TARGETS:
        problems.add("target", f"expected one of {TARGETS}, got {target!r}")
    out["target"] = target if target in TARGETS else "ate"
    out["estimators"] = _parse_named_list(doc.get("estimators", "auto"), "estimators", _estimator_names(),
                                          problems, allow_auto=True)
    out["refuters"] = _parse_named_list(doc.get("refuters", []), "refuters", REFUTERS, problems)
    _check_refuter_variables(out["refuters"], out["graph"], problems)
    out["bootstrap"] = _parse_bootstrap(doc.get("bootstrap", {}), doc.get("seed"), problems)
    segs = doc.get("segments", [])
    out["segments"] = _names(segs, "segments", problems) if segs else ()
    checks = doc.get("checks", {}) or {}
    if not isinstance(checks, dict):
        problems.add("checks", f"expected a mapping of check name to options, got {checks!r}")
        checks = {}
    out["checks"] = tuple(sorted((str(k), _freeze(v)) for k, v in checks.items()))
    out["tracking"] = _parse_tracking(doc.get("tracking"), problems)
    out["schedule"] = _parse_schedule(doc.get("schedule"), problems)
    adj = doc.get("adjustment", {}) or {}
    if not isinstance(adj, dict) or set(adj) - {"include", "exclude"}:
        problems.add("adjustment", "expected a mapping with 'include' and/or 'exclude' lists of graph variables")
        adj = {}
    out["include"] = _names(adj["include"], "adjustment.include", problems) if adj.get("include") else ()
    out["exclude"] = _names(adj["exclude"], "adjustment.exclude", problems) if adj.get("exclude") else ()
    graph = out["graph"]
    if graph is not None:
        for fieldname in ("treatment", "outcome", "include", "exclude", "fixed_effects"):
            for n in out[fieldname]:
                if n not in graph.observed:
                    problems.add(fieldname if fieldname in ("treatment", "outcome", "fixed_effects")
                                 else f"adjustment.{fieldname}",
                                 f"{n!r} is not an observed variable of the graph"
                                 + _suggest(n, graph.observed))
        both = set(out["treatment"]) & set(out["outcome"])
        if both:
            problems.add("outcome", f"treatment and outcome must differ; both name {sorted(both)}")
        for n in set(out["fixed_effects"]) & set(out["treatment"] + out["outcome"]):
            problems.add("fixed_effects", f"{n!r} is the treatment or an outcome, not a covariate to absorb")
    return with_experiment(doc, out, problems)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _estimator_names() -> tuple[str, ...]:
    from causal_core.estimators import ESTIMATORS

    return tuple(sorted(ESTIMATORS))


def _parse_data(data: Any, problems: _Problems) -> DataSpec:
    if not isinstance(data, dict):
        problems.add("data", "expected a mapping with 'table' (or 'path' and 'format')")
        return DataSpec()
    for key in data:
        if key not in DATA_FIELDS:
            problems.add(f"data.{key}", "unknown field" + _suggest(str(key), DATA_FIELDS))
    table, path = data.get("table"), data.get("path")
    if bool(table) == bool(path):
        problems.add("data", "give exactly one of 'table' (a catalog table) or 'path' (files)")
    fmt = data.get("format", "parquet")
    if fmt not in FORMATS:
        problems.add("data.format", f"expected one of {FORMATS}, got {fmt!r}")
    nulls = data.get("nulls", "drop")
    if nulls not in NULL_POLICIES:
        problems.add("data.nulls", f"expected one of {NULL_POLICIES}, got {nulls!r}")
    buckets = data.get("buckets", 1000)
    if not isinstance(buckets, int) or isinstance(buckets, bool) or not 2 <= buckets <= 100_000:
        problems.add("data.buckets", f"expected an integer from 2 to 100000, got {buckets!r}")
        buckets = 1000
    for key in ("partition_column", "unit_id", "where", "table", "path"):
        v = data.get(key)
        if v is not None and not isinstance(v, str):
            problems.add(f"data.{key}", f"expected text, got {v!r}")
    exact = data.get("exact_sums", False)
    if not isinstance(exact, bool):
        problems.add("data.exact_sums", f"expected true or false, got {exact!r}")
        exact = False
    return DataSpec(table=table, path=path, format=fmt, partition_column=data.get("partition_column"),
                    unit_id=data.get("unit_id"), where=data.get("where"), nulls=nulls, buckets=buckets,
                    exact_sums=exact)


def _parse_derived(derived: Any, problems: _Problems) -> tuple[tuple[str, str], ...]:
    if not derived:
        return ()
    if not isinstance(derived, dict):
        problems.add("derived", "expected a mapping of new column name to a Spark SQL expression")
        return ()
    out = []
    for k, v in derived.items():
        if not isinstance(k, str) or not _IDENT.match(k):
            problems.add(f"derived.{k}", "a derived column name must be an identifier")
        elif not isinstance(v, str) or not v.strip():
            problems.add(f"derived.{k}", f"expected a Spark SQL expression, got {v!r}")
        else:
            out.append((k, v))
    return tuple(out)


def _parse_graph(doc: Mapping[str, Any], out: dict[str, Any], problems: _Problems) -> CausalGraph | None:
    text = doc.get("graph")
    if text is None and out["design"] == "experiment" and out["treatment"] and out["outcome"]:
        # A randomized experiment needs no graph beyond treatment -> each metric.
        return CausalGraph.parse("\n".join(f"{t} -> {y}" for t in out["treatment"] for y in out["outcome"]))
    if not isinstance(text, str) or not text.strip():
        problems.add("graph", "expected the causal graph as text (edge list, DOT or GML)")
        return None
    try:
        graph = CausalGraph.parse(text)
    except GraphError as exc:
        problems.add("graph", str(exc))
        return None
    return graph


def _parse_treatment_values(tv: Any, design: str, problems: _Problems) -> TreatmentValues:
    if tv is None:
        return TreatmentValues()
    if not isinstance(tv, dict):
        problems.add("treatment_values", "expected a mapping: {treated: v, control: v} or {arms: [...], control: v}")
        return TreatmentValues(treated=1, control=0)
    unknown = set(tv) - {"treated", "control", "arms"}
    if unknown:
        problems.add("treatment_values", f"unknown keys {sorted(unknown)}; expected treated, control, arms")
    if "control" not in tv:
        problems.add("treatment_values.control", "the control value is required")
    if "arms" in tv:
        arms = tv["arms"]
        if not isinstance(arms, list) or len(arms) < 2 or tv.get("control") not in arms:
            problems.add("treatment_values.arms", "expected a list of at least two arms that includes the control")
            return TreatmentValues(treated=1, control=0)
        return TreatmentValues(control=tv.get("control"), arms=tuple(arms))
    if "treated" not in tv:
        problems.add("treatment_values.treated", "the treated value is required (or give 'arms')")
    elif tv.get("treated") == tv.get("control"):
        problems.add("treatment_values", "treated and control must differ")
    return TreatmentValues(treated=tv.get("treated"), control=tv.get("control"))


def _parse_encode(encode: Any, graph: CausalGraph | None, problems: _Problems) -> tuple[tuple[str, Any], ...]:
    if not encode:
        return ()
    if not isinstance(encode, dict):
        problems.add("encode", "expected a mapping of graph variable to as_is, categorical, or a list of terms")
        return ()
    out = []
    for var, how in encode.items():
        if graph is not None and var not in graph.observed:
            problems.add(f"encode.{var}", "not an observed variable of the graph" + _suggest(str(var), graph.observed))
            continue
        if how in ("as_is", "categorical"):
            out.append((var, how))
        elif isinstance(how, list) and how and all(isinstance(t, str) and t.strip() for t in how):
            out.append((var, tuple(how)))
        else:
            problems.add(f"encode.{var}", f"expected as_is, categorical, or a list of Spark SQL terms, got {how!r}")
    return tuple(out)


def _parse_named_list(value: Any, fieldname: str, valid: tuple[str, ...], problems: _Problems,
                      allow_auto: bool = False) -> tuple[EstimatorSpec, ...]:
    if allow_auto and value == "auto":
        return (EstimatorSpec("auto"),)
    if isinstance(value, dict):
        value = [{k: v} for k, v in value.items()]
    if not isinstance(value, list):
        problems.add(fieldname, f"expected a list of names (or name: options){', or auto' if allow_auto else ''}")
        return ()
    out = []
    for item in value:
        if isinstance(item, str):
            name, opts = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, opts = next(iter(item.items()))
            opts = opts or {}
            if not isinstance(opts, dict):
                problems.add(f"{fieldname}.{name}", f"options must be a mapping, got {opts!r}")
                continue
        else:
            problems.add(fieldname, f"expected a name or a one-key mapping name: options, got {item!r}")
            continue
        if name == "auto" and allow_auto:
            out.append(EstimatorSpec("auto"))
            continue
        if name not in valid:
            problems.add(f"{fieldname}.{name}", f"unknown name; valid names: {', '.join(valid)}"
                         + _suggest(str(name), valid))
            continue
        _OPTION_CHECKS[fieldname](name, opts, problems)
        out.append(EstimatorSpec(name, tuple(sorted((str(k), _freeze(v)) for k, v in opts.items()))))
    return tuple(out)


def _check_estimator_options(name: str, opts: Mapping[str, Any], problems: _Problems) -> None:
    """Options must be keyword parameters of the estimator (bootstrap comes from the spec)."""
    from causal_core.estimators import ESTIMATORS

    _check_options(f"estimators.{name}", name, ESTIMATORS[name], opts, problems)


def _check_refuter_options(name: str, opts: Mapping[str, Any], problems: _Problems) -> None:
    """A built refuter's options must be keyword parameters of its class; a refuter that is not
    built yet takes any options (it is ignored with a warning)."""
    from causal_core.refuters.registry import REFUTER_CLASSES, refuter_names

    if name in refuter_names():
        _check_options(f"refuters.{name}", name, REFUTER_CLASSES[name], opts, problems)


def _check_options(where: str, name: str, cls: type, opts: Mapping[str, Any], problems: _Problems) -> None:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    valid = tuple(p for p, par in params.items()
                  if p not in ("self", "bootstrap") and par.kind is inspect.Parameter.KEYWORD_ONLY)
    for key in opts:
        if key not in valid:
            problems.add(f"{where}.{key}", f"unknown option; {name} takes: {', '.join(valid)}"
                         + _suggest(str(key), valid))


_OPTION_CHECKS = {"estimators": _check_estimator_options, "refuters": _check_refuter_options}


def _check_refuter_variables(refuters: tuple[EstimatorSpec, ...], graph: CausalGraph | None,
                             problems: _Problems) -> None:
    """Options a refuter declares as graph variables (``benchmarks``) must name observed ones."""
    from causal_core.refuters.registry import REFUTER_CLASSES, refuter_names

    if graph is None:
        return
    for r in refuters:
        if r.name not in refuter_names():
            continue
        for option in REFUTER_CLASSES[r.name].graph_variable_options:
            value = r.options_dict().get(option, ())
            names = (value,) if isinstance(value, str) else value
            if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
                problems.add(f"refuters.{r.name}.{option}", f"expected a list of graph variables, got {value!r}")
                continue
            for n in names:
                if n not in graph.observed:
                    problems.add(f"refuters.{r.name}.{option}", f"{n!r} is not an observed variable of the graph"
                                 + _suggest(n, graph.observed))


def _parse_bootstrap(value: Any, seed: Any, problems: _Problems) -> BootstrapSpec:
    if not isinstance(value, dict):
        problems.add("bootstrap", "expected a mapping: {replicates: 1000, seed: 0, kind: poisson}")
        return BootstrapSpec()
    unknown = set(value) - {"replicates", "seed", "kind"}
    if unknown:
        problems.add("bootstrap", f"unknown keys {sorted(unknown)}; expected replicates, seed, kind")
    reps = value.get("replicates", 1000)
    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 0:
        problems.add("bootstrap.replicates", f"expected a non-negative integer, got {reps!r}")
        reps = 1000
    s = value.get("seed", seed if seed is not None else 0)
    if not isinstance(s, int) or isinstance(s, bool) or s < 0:
        problems.add("bootstrap.seed", f"expected a non-negative integer, got {s!r}")
        s = 0
    kind = value.get("kind", "poisson")
    if kind not in BOOTSTRAP_KINDS:
        problems.add("bootstrap.kind", f"expected one of {BOOTSTRAP_KINDS}, got {kind!r}"
                     + _suggest(str(kind), BOOTSTRAP_KINDS))
        kind = "poisson"
    return BootstrapSpec(replicates=reps, seed=s, kind=kind)


def _parse_tracking(value: Any, problems: _Problems) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("experiment"), str):
        return value["experiment"]
    problems.add("tracking", "expected an experiment name, or {experiment: name}")
    return None


def _parse_schedule(value: Any, problems: _Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add("schedule", f"expected a cron expression or a preset {SCHEDULE_PRESETS}, got {value!r}")
        return None
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            problems.add("schedule", f"unknown preset {value!r}; expected one of {SCHEDULE_PRESETS}")
        return value
    if len(value.split()) != 5:
        problems.add("schedule", f"a cron expression has 5 fields (minute hour day month weekday), got {value!r}")
    return value
