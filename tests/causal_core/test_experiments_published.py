"""A published experiment reproduced from its public data.

The National Supported Work demonstration, Dehejia & Wahba's experimental sample (185
treated, 260 controls), as shipped in the ``causaldata`` package (``nsw_mixtape``).
Dehejia & Wahba (1999), "Causal effects in nonexperimental studies: reevaluating the
evaluation of training programs", JASA 94(448), Table 3, row "NSW": the experimental
effect on 1978 earnings is 1,794 with standard error 633 — the difference in means with
the equal-variance (Student) standard error. Welch's standard error on the same data is
671, which the test also pins.
"""

import numpy as np
import pytest

from causal_core.experiments import ArmSums, Metric, arm_estimate, compare

causaldata = pytest.importorskip("causaldata")


def test_nsw_experimental_effect_is_1794_with_se_633():
    from causaldata import nsw_mixtape

    d = nsw_mixtape.load_pandas().data
    m = Metric("re78", "re78")
    arms = {t: ArmSums.from_units({"re78": d.loc[d.treat == t, "re78"].to_numpy(np.float64)}) for t in (0, 1)}
    assert (arms[0].count(), arms[1].count()) == (260, 185)
    student = compare(arm_estimate(arms[0], m), arm_estimate(arms[1], m), test="student")
    assert round(student.estimate) == 1794
    assert round(student.se) == 633
    welch = compare(arm_estimate(arms[0], m), arm_estimate(arms[1], m))
    assert round(welch.se) == 671 and welch.p_value == pytest.approx(0.0079, abs=5e-5)
