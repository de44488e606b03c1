"""The configuration model and its validation."""

from .config import (
    Config,
    HealthCheck,
    Listener,
    Mode,
    Persistence,
    RealServer,
    RealServerState,
    Rule,
    Scheduler,
    Settings,
    VirtualService,
)
from .load import DEFAULT_CONFIG_FILE, Loaded, dump_yaml, load_file, load_text, validate_data
from .problems import Problem
from .types import Duration, PortRange

__all__ = [
    "Config",
    "DEFAULT_CONFIG_FILE",
    "Duration",
    "HealthCheck",
    "Listener",
    "Loaded",
    "Mode",
    "Persistence",
    "PortRange",
    "Problem",
    "RealServer",
    "RealServerState",
    "Rule",
    "Scheduler",
    "Settings",
    "VirtualService",
    "dump_yaml",
    "load_file",
    "load_text",
    "validate_data",
]
