"""Error types for user mistakes: each message names the culprit and what was expected."""


class SkillitError(Exception):
    """Base class for every user-facing error raised by skillit-ray."""


class ConfigError(SkillitError):
    """A config key, value or combination is invalid."""


class DataError(SkillitError):
    """A data file, row, column or skill is missing or malformed."""


class GraphError(SkillitError):
    """A skills graph file is malformed or does not match the run's skills."""


class PolicyError(SkillitError):
    """A policy is unknown, misconfigured, raised, or returned an invalid mixture."""


class CheckpointError(SkillitError):
    """A checkpoint is missing, unreadable, or does not match the run being resumed."""


class TrainingError(SkillitError):
    """Training stopped on its own: a non-finite eval loss names the round and skill."""


class Interrupted(SkillitError):
    """The run stopped on SIGINT/SIGTERM at a round boundary; the message says how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class ClusterError(SkillitError):
    """Ray could not be started or joined."""
