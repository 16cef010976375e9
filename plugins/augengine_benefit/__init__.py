"""augengine built-in evaluator plugin ``benefit``: classifier metrics with bootstrap CIs and paired tests.

    ev = augengine.create_evaluator("benefit")
    result = ev.evaluate(arm_classifier, split.test, baseline=baseline_classifier)
    print(result.verdicts[0])
"""

import augengine

from augengine_benefit.evaluator import BenefitConfig, BenefitEvaluator

__all__ = ["BenefitEvaluator", "BenefitConfig"]


@augengine.hookimpl
def register_evaluators(register):
    register(BenefitEvaluator)
