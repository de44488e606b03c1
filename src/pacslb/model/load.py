"""Reading a configuration: YAML text to a validated `Config` and the list of problems found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .checks import check, check_files
from .config import Config
from .files import Reserved, read_config_text
from .limits import MAX_CONFIG_BYTES, shape_problems, too_deep, too_large
from .problems import Problem, errors, from_validation_error
from .reuse import ValidatedServices

DEFAULT_CONFIG_FILE = "pacslb.yaml"


@dataclass
class Loaded:
    """The outcome of loading: a config when there are no errors, and every problem found (warnings too)."""

    config: Config | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.config is not None and not errors(self.problems)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (YAML would keep the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be plain text", key_node.start_mark) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

if hasattr(yaml, "CSafeLoader"):

    class _FastUniqueKeyLoader(yaml.CSafeLoader):  # type: ignore[name-defined, misc]
        """The same loader on libyaml's parser: several times faster, and far less memory, on large files."""

    _FastUniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
else:  # PyYAML built without libyaml
    _FastUniqueKeyLoader = None  # type: ignore[assignment, misc]


# The fix for what PyYAML says most often, in the words of someone editing the file (PyYAML names the token).
_YAML_HINTS = (
    ("'\\t' that cannot start any token", "indent with spaces, not tabs"),
    ("that cannot start any token", "put a value that starts with this character in quotes"),
    ("expected <block end>", "check this line's indentation: the keys of one mapping line up, and a list item starts with '- '"),
    ("mapping values are not allowed here", "put a value holding ': ' in quotes, or indent this key like its neighbours"),
    ("could not find expected ':'", "write 'key: value' (a space after the colon), or close the quotes opened before"),
    ("expected ',' or '}'", "close the '{' opened before, or put a value holding ',' in quotes"),
    ("expected ',' or ']'", "close the '[' opened before, or put a value holding ',' in quotes"),
)


def yaml_hint(problem: str) -> str:
    """'; ' and the usual fix for a PyYAML problem message, or '' when there is no usual one."""
    for words, hint in _YAML_HINTS:
        if words in problem:
            return f"; {hint}"
    return ""


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    """YAML text to plain data, or a problem that names the line.

    libyaml reads it when PyYAML has it; a document it refuses is read again by the pure Python
    loader, whose messages are more precise (they name a tab, say). Text over MAX_CONFIG_BYTES is not
    parsed, and a document too deep for the parsers is refused (model/limits.py).
    """
    if len(text) > MAX_CONFIG_BYTES:  # characters: at least as many bytes
        return None, [too_large(len(text.encode(errors="replace")))]
    if _FastUniqueKeyLoader is not None:
        try:
            return yaml.load(text, Loader=_FastUniqueKeyLoader), []
        except yaml.YAMLError as exc:
            if "maximum nesting depth" in str(exc):  # libyaml's own bound (1,000): the Python loader would recurse
                return None, [too_deep()]
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader), []
    except RecursionError:
        return None, [too_deep()]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        what = exc.problem or exc.context or ""
        return None, [Problem(where, f"not valid YAML: {what}{yaml_hint(what)}")]
    except yaml.YAMLError as exc:
        return None, [Problem("", f"not valid YAML: {exc}")]


def validate_data(
    data: Any, base_dir: Path | None = None, reserved: Reserved | None = None, services: ValidatedServices | None = None
) -> Loaded:
    """Plain data (from YAML or JSON) to a Config, with every problem; files are checked when base_dir is given
    (and refused inside `reserved`, the appliance's state directory, when the caller runs an appliance).
    With `services`, the services whose data it validated last time are reused (model/reuse.py): the same result."""
    if not isinstance(data, dict):
        return Loaded(None, [Problem("", "the configuration must be a mapping with 'version: 1' and 'virtual_services'")])
    if shape := shape_problems(data):  # nesting, size, aliases: before the model recurses into it
        return Loaded(None, shape)
    try:
        config = Config.model_validate(data) if services is None else services.validate(data)
    except ValidationError as exc:
        return Loaded(None, from_validation_error(exc, data, Config))
    problems = check(config)
    if base_dir is not None:
        problems += check_files(config, base_dir, reserved)
    return Loaded(config if not errors(problems) else None, problems)


def load_text(
    text: str, base_dir: Path | None = None, reserved: Reserved | None = None, services: ValidatedServices | None = None
) -> Loaded:
    data, problems = parse_yaml(text)
    if problems:
        return Loaded(None, problems)
    return validate_data(data, base_dir, reserved, services)


def load_file(path: Path, reserved: Reserved | None = None) -> Loaded:
    """Read and validate a configuration file; relative certificate paths are taken from its folder."""
    if not path.exists() and not path.is_symlink():
        return Loaded(None, [Problem("", f"{path} does not exist: write one with 'pacslb init --template true-pacs -o {path}'")])
    text = read_config_text(path)  # a regular file of bounded size (model/files.py)
    if isinstance(text, Problem):
        return Loaded(None, [text])
    return load_text(text, base_dir=path.resolve().parent, reserved=reserved)


def dump_yaml(config: Config) -> str:
    """The configuration as YAML, with defaults left out so that files stay short."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    data = {"version": config.version, **data}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
