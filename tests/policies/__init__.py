"""Policy tests; ``context`` builds the PolicyContext most of them need."""

from skillit_ray.mixture import PolicyContext


def context(skills, eval_=None, **kw) -> PolicyContext:
    """Eval skills = train skills unless given, uniform natural proportions, 6 x 10 x 8."""
    base = dict(
        train_skills=tuple(skills),
        eval_skills=tuple(eval_ or skills),
        natural_proportions={s: 1 / len(skills) for s in skills},
        rounds=6,
        steps_per_round=10,
        batch_size=8,
    )
    base.update(kw)
    return PolicyContext(**base)
