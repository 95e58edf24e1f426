"""When a run evaluates during training: every N steps and/or at powers of two.

    schedule = EvalSchedule(every=0, pow2=True, last_step=10)
    schedule.steps()          # [0, 1, 2, 4, 8, 10]

Step 0 is the score before any update (zero-shot for a model from `--init`); the last
step is always evaluated, so the curve ends where training ends. `train_loop` evaluates at
step 0 before the first update, and at a due step after its update and before its
checkpoint, so a checkpoint carries its own step's evaluation and a resumed run does not
evaluate it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from plurel_ray.errors import ConfigError


@dataclass(frozen=True)
class EvalSchedule:
    """The steps to evaluate at.

    Args:
        every: evaluate at steps 0, N, 2N, … (0: not by this rule).
        pow2: evaluate at steps 0, 1, 2, 4, 8, ….
        last_step: the run's final step, evaluated whenever a rule is on.
    """

    every: int = 0
    pow2: bool = False
    last_step: int = 0

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ConfigError(f"--eval-every must be ≥ 0, got {self.every}")

    @property
    def active(self) -> bool:
        """Whether any step is evaluated."""
        return self.every > 0 or self.pow2

    def due(self, step: int) -> bool:
        """Whether `step` is evaluated (0: before the first update).

        Args:
            step: optimizer steps taken.
        """
        if not self.active or step < 0:
            return False
        if step in (0, self.last_step):
            return True
        return bool(self.every and step % self.every == 0) or (self.pow2 and step & (step - 1) == 0)

    def steps(self) -> list[int]:
        """Every evaluated step up to `last_step`, ascending."""
        return [step for step in range(self.last_step + 1) if self.due(step)]
