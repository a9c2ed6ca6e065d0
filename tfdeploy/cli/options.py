"""Options of the ``tfdeploy`` commands, each declared once, their defaults taken from the library.

Two kinds of declarations live here (in the style of pip-tools' ``piptools/scripts/options.py``):

* options with no library counterpart (``--json``, ``--out``) are module-level ``click.option``
  objects, reused as decorators;
* an option that feeds a field of a config dataclass (or a parameter of a library function) is a
  :class:`ConfigOption`, made by :func:`config_option`: its default (and, for an enum field, its
  choices; without ``help=``, its help text) comes from that field, so the command line and the
  library cannot disagree. Options several commands share (``--data``, ``--overwrite``, the
  model-loading options, ...) are factories here that take the config they feed.

``tests/unit/test_cli_defaults.py`` walks every command and checks each option against its field.

Example:
    >>> import click
    >>> from tfdeploy.compression import CompressConfig
    >>> @click.command()
    ... @config_option(CompressConfig, "epochs", "--epochs", type=click.IntRange(min=1), help="Fine-tune epochs.")
    ... @data(CompressConfig, help="Fine-tune data.")
    ... @as_json
    ... def train(epochs: int, data: Path | None, as_json: bool) -> None:
    ...     '''Uses CompressConfig's defaults: --epochs 2, no --data.'''
    >>> [p.default for p in train.params][:2]
    [2, None]
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import click
from click.core import ParameterSource

from tfdeploy.compression import Recipe
from tfdeploy.errors import TfdeployError

# A config dataclass (CompressConfig, ...) or a library function whose parameters are its options (verify, ...).
Source = Any
Decorator = Callable[[Any], Any]
FieldName = str | tuple[str, ...]

PATH = click.Path(path_type=Path)


# --------------------------------------------------------------------------------------------------
# defaults, choices and help of config fields


def default_of(source: Source, field: FieldName) -> Any:
    """The default of a config field: a dataclass field's default (its factory called) or a parameter's.

    Args:
        source: A dataclass (``CompressConfig``) or a function (``verify``).
        field: The field's name, or a tuple of names for an option that sets several fields.

    Returns:
        The default value (a tuple of them for a tuple of names).

    Raises:
        KeyError: If ``source`` has no such field or the field has no default.

    Example:
        >>> from tfdeploy.compression import CompressConfig
        >>> default_of(CompressConfig, "epochs")
        2
    """
    if isinstance(field, tuple):
        return tuple(default_of(source, name) for name in field)
    defaults = defaults_of(source)
    if field not in defaults:
        raise KeyError(f"{source.__name__} has no field {field!r} with a default")
    return defaults[field]


def defaults_of(source: Source) -> dict[str, Any]:
    """Every field of ``source`` that has a default -> that default (a ``default_factory`` called)."""
    if dataclasses.is_dataclass(source):
        return {field.name: field.default if field.default is not dataclasses.MISSING else field.default_factory()
                for field in dataclasses.fields(source)
                if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING}
    return {name: parameter.default for name, parameter in inspect.signature(source).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def help_of(source: Source, field: str) -> str | None:
    """The docstring line of a field (``Attributes:`` of a dataclass, ``Args:`` of a function), as plain text.

    Example:
        >>> from tfdeploy.compression import CompressConfig
        >>> help_of(CompressConfig, "batch_size")
        'Fine-tune batch size.'
    """
    lines = inspect.getdoc(source).splitlines() if inspect.getdoc(source) else []
    section = next((i for i, line in enumerate(lines) if line.strip() in ("Attributes:", "Args:")), None)
    if section is None:
        return None
    text: list[str] = []
    for line in lines[section + 1:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section
        entry = re.match(r"^ {4}(\w+)(?: \(.*?\))?: (.*)$", line)
        if entry:
            if text:
                break
            if entry.group(1) == field:
                text.append(entry.group(2))
        elif text and line.startswith(" " * 8):
            text.append(line.strip())
    return _plain(" ".join(text)) if text else None


def _plain(text: str) -> str:
    """reStructuredText roles and literals as the plain text ``--help`` shows."""
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def cli_value(value: Any) -> Any:
    """A field value as the option's default: an enum as its value, a sequence as ``a,b,c``.

    Example:
        >>> cli_value((1, 8, 32)), cli_value(Recipe.STRIP)
        ('1,8,32', 'strip')
    """
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return ",".join(str(cli_value(item)) for item in value)
    return value


class EnumChoice(click.Choice):
    """The values of an enum as choices; the command receives the enum member.

    Example:
        >>> from tfdeploy.compression import IoDtype
        >>> list(EnumChoice(IoDtype).choices), EnumChoice(IoDtype).convert("int8", None, None)
        (['float32', 'int8', 'uint8'], <IoDtype.INT8: 'int8'>)
    """

    def __init__(self, enum_type: type[enum.Enum]) -> None:
        super().__init__([member.value for member in enum_type])
        self.enum_type = enum_type

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.enum_type):
            return value
        return self.enum_type(super().convert(value, param, ctx))


class ConfigOption(click.Option):
    """An option feeding one field of a config (or several, for ``--hot-swap-seconds``).

    Its default is ``to_cli(<the field's default>)``; an enum field without ``type=`` gets
    :class:`EnumChoice`; without ``help=`` the field's docstring line is the help.

    Attributes:
        source: The config dataclass or library function.
        field: The field's name (a tuple of names for an option that sets several).
        to_config: The parsed option value -> the value the command passes for the field
            (``None``: passed as parsed). :mod:`tests.unit.test_cli_defaults` checks that the
            parsed default maps back to the field's default.
    """

    def __init__(self, param_decls: Sequence[str], *, source: Source, field: FieldName,
                 to_cli: Callable[[Any], Any] = cli_value, to_config: Callable[[Any], Any] | None = None,
                 **attrs: Any) -> None:
        if "default" in attrs:
            raise TypeError(f"{param_decls[0]}: the default comes from {source.__name__}.{field}")
        value = default_of(source, field)
        if isinstance(value, enum.Enum) and "type" not in attrs:
            attrs["type"] = EnumChoice(type(value))
        if attrs.get("help") is None and isinstance(field, str):
            attrs["help"] = help_of(source, field)
        default = to_cli(value)
        is_flag = attrs.get("is_flag") or any("/" in decl for decl in param_decls)
        if not is_flag and default not in (None, "", ()):
            attrs.setdefault("show_default", True)
        super().__init__(param_decls, default=default, **attrs)
        self.source, self.field, self.to_config = source, field, to_config


def config_option(source: Source, field: FieldName, *param_decls: str, **attrs: Any) -> Decorator:
    """``click.option(*param_decls, **attrs)`` feeding ``source.field`` (see :class:`ConfigOption`).

    The command receives the value under the field's name (``--timeout`` -> ``timeout_s``) unless
    ``param_decls`` name another one.

    Example:
        >>> from tfdeploy.compression import AutoConfig
        >>> option = config_option(AutoConfig, "timeout_s", "--timeout", type=click.FloatRange(min=0))
    """
    if isinstance(field, str) and not any(decl.isidentifier() for decl in param_decls):
        param_decls = (*param_decls, field)
    return click.option(*param_decls, cls=ConfigOption, source=source, field=field, **attrs)


def negated_flag(source: Source, field: str, flag: str, help: str) -> Decorator:
    """A ``--no-X`` flag: the boolean ``field`` is True unless the flag is given."""
    return config_option(source, field, flag, is_flag=True, flag_value=False, help=help)


def fields_for(values: dict[str, Any], *sources: Source) -> list[dict[str, Any]]:
    """Splits a command's option values among the configs they feed (by field name).

    Raises:
        TypeError: If a value feeds none of ``sources`` (an option the command would drop).

    Example:
        >>> from tfdeploy.compression import AutoConfig, CompressConfig
        >>> fields_for({"epochs": 3, "keep_all": True}, CompressConfig, AutoConfig)
        [{'epochs': 3}, {'keep_all': True}]
    """
    names = [set(field_names(source)) for source in sources]
    unused = set(values).difference(*names)
    if unused:
        raise TypeError(f"options {sorted(unused)} feed none of {[s.__name__ for s in sources]}")
    return [{k: v for k, v in values.items() if k in these} for these in names]


def field_names(source: Source) -> list[str]:
    """The fields of a dataclass or the parameters of a function."""
    if dataclasses.is_dataclass(source):
        return [field.name for field in dataclasses.fields(source)]
    return list(inspect.signature(source).parameters)


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user gave option ``name`` (rather than its default)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


# --------------------------------------------------------------------------------------------------
# parsing (click callbacks)


def recipe_list(ctx: click.Context, param: click.Parameter, value: str) -> list[Recipe]:
    """``prune,ptq-int8`` -> recipes (``all`` expands)."""
    try:
        return Recipe.parse_list(value)
    except TfdeployError as exc:
        raise click.BadParameter(str(exc)) from None


def batch_size_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """``1,8,32`` -> (1, 8, 32), each positive."""
    try:
        sizes = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,8,32. Received: {value!r}") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"batch sizes must be positive integers. Received: {value!r}")
    return sizes


def version_number(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """``auto`` -> None, else a non-negative version number."""
    if value == "auto":
        return None
    if not value.isdigit():
        raise click.BadParameter(f"a version is a non-negative integer or 'auto'. Received: {value!r}")
    return int(value)


def version_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    """``1,2`` -> [1, 2] (parts that are not numbers are ignored)."""
    return [int(v) for v in value.split(",") if v.strip().isdigit()]


def extra_signatures(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, int | None]:
    """``NAME[:BATCH]`` specs -> {name: fixed batch size or None}."""
    signatures: dict[str, int | None] = {}
    for spec in value:
        name, _, batch = spec.partition(":")
        if not name or (batch and not batch.isdigit()):
            raise click.BadParameter(f"expected NAME or NAME:BATCH, e.g. serving_b8:8. Received: {spec!r}")
        signatures[name] = int(batch) if batch else None
    return signatures


def name_pairs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` specs -> [(name, value)]."""
    pairs = []
    for spec in value:
        name, sep, base = spec.partition("=")
        if not sep or not name or not base:
            raise click.BadParameter(f"expected NAME=BASE_DIR, e.g. fashion=models/fashion. Received: {spec!r}")
        pairs.append((name, base))
    return pairs


def version_labels(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """``MODEL:LABEL=VERSION`` specs -> {model: {label: version}}."""
    labels: dict[str, dict[str, int]] = {}
    for spec in value:
        model, _, rest = spec.partition(":")
        label, _, version = rest.partition("=")
        if not model or not label or not version.isdigit():
            raise click.BadParameter(f"expected MODEL:LABEL=VERSION, e.g. fashion:stable=1. Received: {spec!r}")
        labels.setdefault(model, {})[label] = int(version)
    return labels


def seconds_pair(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    """``3,4`` -> (3.0, 4.0)."""
    try:
        first, second = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected BEFORE,AFTER seconds. Received: {value!r}") from None
    return first, second


def fraction_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    """``0.5,0.25`` -> (0.5, 0.25), each in (0, 1]; empty -> ()."""
    try:
        values = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions like 0.5,0.25. Received: {value!r}") from None
    if any(not 0 < v <= 1 for v in values):
        raise click.BadParameter(f"each must be in (0, 1]. Received: {value!r}")
    return values


def excludes(other: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback refusing this option together with option ``other`` (whichever the user gave second)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        assert param.name is not None
        if given(ctx, param.name) and given(ctx, other):
            first, second = [p.opts[0] for p in ctx.command.params if p.name in (param.name, other)]
            raise click.UsageError(f"give {first} or {second}, not both", ctx=ctx)
        return value

    return callback


def comma_list(to_field: Callable[[str], Any]) -> Callable[[Any], str]:
    """``to_cli`` of a field given as ``a,b``: ``to_field`` formats each item (e.g. ``'{:g}'.format``)."""
    return lambda values: ",".join(to_field(v) for v in values)


# --------------------------------------------------------------------------------------------------
# options shared by several commands


as_json = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")


def out_dir(help: str = "Output directory.") -> Decorator:
    """The required ``--out DIR`` (``out_dir``: where the command's log is kept too)."""
    return click.option("--out", "out_dir", required=True, type=PATH, help=help)


def data(source: Source, help: str, field: str = "data", flag: str = "--data") -> Decorator:
    """``--data``: a ``.npz`` or an image directory."""
    return config_option(source, field, flag, field, type=PATH, help=help)


def overwrite(source: Source, help: str) -> Decorator:
    """``--overwrite``: replace what the command would otherwise refuse to touch."""
    return config_option(source, "overwrite", "--overwrite", is_flag=True, help=help)


def output_name(source: Source) -> Decorator:
    """``--output NAME``: the model output accuracy is measured on."""
    return config_option(source, "output", "--output", "output", metavar="NAME",
                         help="Output accuracy is measured on (default: the first classification head).")


def metrics(source: Source) -> Decorator:
    """``--metric SPEC`` (repeatable): what variants are judged by; the names come from the metric registry."""
    from tfdeploy.quality.metrics import REGISTRY

    return config_option(source, "metrics", "--metric", "metrics", multiple=True, metavar="SPEC",
                         to_cli=tuple, show_default=False,
                         help="Judge every variant by this metric (repeatable; the first drives --auto): NAME, "
                         "NAME=PARAM or module:function (your own), each optionally @OUTPUT. Registered: "
                         + ", ".join(REGISTRY.names()) + ". Default: the model's compiled metrics, else by output "
                         "head (softmax: accuracy; sigmoid: auc, logloss; several sigmoids: F1; values: mae, rmse); "
                         "without labels, fidelity (agreement, snr).")


def select_tf_ops(source: Source, help: str) -> Decorator:
    """``--select-tf-ops``: TFLite conversion may fall back to TensorFlow ops."""
    return config_option(source, "select_tf_ops", "--select-tf-ops", is_flag=True, help=help)


def recipes(source: Source) -> Decorator:
    """``--recipe a,b``: recipes to run; choices from :class:`~tfdeploy.compression.Recipe`."""
    return config_option(source, "recipes", "--recipe", "recipes", callback=recipe_list,
                         help="Comma-separated recipes: " + ", ".join(Recipe.choices()) + "; chain them with + "
                         "(distill+ptq-int8: quantize the distilled student).")


def int8_granularity(source: Source, help: str | None = None) -> Decorator:
    """``--int8-granularity``: weight scales of post-training int8."""
    return config_option(source, "int8_granularity", "--int8-granularity", help=help)


def batch_sizes(source: Source, field: str, flag: str, help: str | None = None) -> Decorator:
    """A comma-separated list of positive batch sizes, e.g. ``--batch-sizes 1,8,32``."""
    return config_option(source, field, flag, callback=batch_size_list, help=help)


def signature(source: Source) -> Decorator:
    """``--signature NAME``: the SavedModel signature."""
    return config_option(source, "signature_name", "--signature", "signature_name")


def no_cold_start(source: Source) -> Decorator:
    """``--no-cold-start``: skip the fresh-process measurement."""
    return negated_flag(source, "cold_start", "--no-cold-start", help="Skip the fresh-process cold-start measurement.")


def warmup_options(source: Source, data_field: str = "warmup_data",
                   sizes_field: str = "warmup_batch_sizes") -> Decorator:
    """``--warmup-data`` and ``--warmup-batch-sizes``: what the TF Serving warmup file holds."""
    return stacked(
        data(source, field=data_field, flag="--warmup-data",
             help="Real warmup samples: .npz or image directory (default: synthesized from the signature)."),
        batch_sizes(source, sizes_field, "--warmup-batch-sizes",
                    help="One warmup request per batch size, e.g. 1,8,32."),
    )


def stacked(*decorators: Decorator) -> Decorator:
    """Applies ``decorators`` as if written one above the other (the first on top)."""

    def decorate(func: Any) -> Any:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


# --------------------------------------------------------------------------------------------------
# model loading (every command that loads a user's model)


@dataclasses.dataclass(frozen=True)
class Loading:
    """How a command loads the user's model: custom objects and Keras's ``safe_mode``."""

    custom_objects: dict[str, Any]
    safe_mode: bool

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the library call; nothing given keeps the library's defaults."""
        given_ = {"custom_objects": self.custom_objects} if self.custom_objects else {}
        return given_ if self.safe_mode else {**given_, "safe_mode": False}


def _custom_objects(specs: Sequence[str]) -> dict[str, Any]:
    from tfdeploy.model import parse_custom_objects

    return parse_custom_objects(specs)


def model_loading(source: Source) -> Decorator:
    """Adds ``--custom-objects`` and ``--unsafe-deserialization``; the command receives ``loading``.

    Args:
        source: The config (or library function) taking ``custom_objects`` and ``safe_mode``.
    """
    default = default_of(source, "custom_objects")
    options = stacked(
        config_option(source, "custom_objects", "--custom-objects", "custom_object_specs", multiple=True,
                      metavar="MODULE:NAME", to_cli=lambda objects: tuple(objects or ()), show_default=False,
                      to_config=lambda specs: _custom_objects(specs) if specs else default,
                      help="Custom layer/function the model needs (repeatable); importing MODULE also registers "
                           "@register_keras_serializable classes."),
        negated_flag(source, "safe_mode", "--unsafe-deserialization",
                     help="Allow Lambda layers: their Python code is stored in the model file and runs when it is "
                          "loaded (Keras safe_mode=False). Only for files you trust."),
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, custom_object_specs: tuple[str, ...], safe_mode: bool, **kwargs: Any) -> Any:
            from tfdeploy.cli.context import say

            if not safe_mode:
                say("Warning: --unsafe-deserialization: Lambda layers in the model file will run the Python code "
                    "stored in it.")
            loading = Loading(_custom_objects(custom_object_specs), safe_mode=safe_mode)
            return func(*args, loading=loading, **kwargs)

        return options(wrapper)

    return decorate


# --------------------------------------------------------------------------------------------------
# --json (print) and --json-out PATH (write), with the old ``bench --json PATH`` for one release


class _FlagTakingLegacyValue(click.Option):
    """A flag that still accepts the value it took before (``--json PATH``); ``--help`` shows the flag."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return (self.opts[0], record[1]) if record else None


def _json_flag(ctx: click.Context, param: click.Parameter, value: str | None) -> bool | Path:
    return False if value is None else True if value == "" else Path(value)


as_json_or_legacy_path = click.option(
    "--json", "as_json", cls=_FlagTakingLegacyValue, is_flag=False, flag_value="", default=None,
    callback=_json_flag, help="Print the report as JSON.")


def json_out(source: Source, field: str = "json_path") -> Decorator:
    """``--json-out PATH``: also write the report as JSON to PATH."""
    return config_option(source, field, "--json-out", field, type=PATH, metavar="PATH",
                         help="Write the report as JSON to PATH.")


def split_legacy_json(as_json: bool | Path, json_path: Path | None) -> tuple[bool, Path | None]:
    """(print JSON?, JSON file) from ``--json`` and ``--json-out``; ``--json PATH`` warns and means --json-out.

    Raises:
        click.UsageError: For ``--json PATH`` together with ``--json-out``.
    """
    if not isinstance(as_json, Path):
        return as_json, json_path
    if json_path is not None:
        raise click.UsageError("give --json-out PATH (--json PATH is its deprecated spelling), not both")
    from tfdeploy.cli.context import say

    say(f"Warning: --json PATH is deprecated and will be removed in tfdeploy 0.3: use --json-out {as_json} "
        "(--json alone prints the report as JSON).")
    return False, as_json
