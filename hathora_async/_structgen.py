"""Fast structure functions for attrs models, generated once per class.

The fast converter's hook for an attrs class is a plain function, written from
the class's fields the first time the class is seen, that checks every value's
JSON type inline (str is str, int is int and not bool, arrays are lists,
objects are dicts), writes nested models out inline and builds each instance
without a call per field. It is exactly as strict as the explaining converter's
hooks but says nothing about what went wrong: on any failure the caller decodes
again with detailed validation to explain it. Types it does not inline are
handed to the converter's own hook, so new models and field types work without
touching this module.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs

from .models import OpenEnum

__all__ = ["fast_attrs_hook", "fast_constructor"]

T = TypeVar("T")

_UNION_TYPES = (typing.Union, types.UnionType)


class _Source:
    """The lines of one generated function and the names it refers to."""

    def __init__(
        self,
        converter: cattrs.Converter,
        rename: Callable[[str], str],
        exact: tuple[type[Any], ...],
        parse_datetime: Callable[[str], datetime],
    ) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"_parse_datetime": parse_datetime, "_new": object.__new__}
        self.converter = converter
        self.rename = rename
        self.exact = exact
        # Models being written out, outermost first: one met again inside itself
        # is not written out again (recursive models are not supported, here or
        # by the explaining converter).
        self.open_models: list[type[Any]] = []

    def name(self, prefix: str, value: Any) -> str:
        """A global of the generated function bound to ``value``."""
        name = f"_{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def check(self, var: str, tp: Any, indent: int) -> None:
        """Lines that validate ``var`` as ``tp`` and rebind it to the structured value."""
        if tp in self.exact:
            self.add(indent, f"if type({var}) is not {tp.__name__}: raise TypeError")
        elif tp is datetime:
            self.add(indent, f"if type({var}) is not str: raise TypeError")
            self.add(indent, f"{var} = _parse_datetime({var})")
        elif isinstance(tp, type) and issubclass(tp, OpenEnum):
            # The member table first; a miss goes through the class (new values).
            members = self.name("members", tp._value2member_map_)
            cls = self.name("enum", tp)
            self.add(indent, f"if type({var}) is not str: raise TypeError")
            self.add(indent, f"{var} = {members}.get({var}) or {cls}({var})")
        elif (
            get_origin(tp) in _UNION_TYPES and len(get_args(tp)) == 2 and type(None) in get_args(tp)
        ):
            # X | None; wider unions go to the converter's own hook below.
            inner = next(arg for arg in get_args(tp) if arg is not type(None))
            self.add(indent, f"if {var} is not None:")
            self.check(var, inner, indent + 1)
        elif _sequence_container(tp) is not None:
            container = self.name("container", _sequence_container(tp))
            item_type = get_args(tp)[0]
            item = self.name("hook", self.converter.get_structure_hook(item_type))
            item_tp = self.name("type", item_type)
            self.add(indent, f"if type({var}) is not list: raise TypeError")
            self.add(indent, f"{var} = {container}([{item}(x, {item_tp}) for x in {var}])")
        elif tp is None or tp is Any:
            pass  # no declared type: kept as decoded, as cattrs does
        elif attrs.has(tp) and tp not in self.open_models:
            self.model(var, tp, indent)  # written out here: no call per nested object
        else:
            # Anything not written out above (recursive models, wider unions, other
            # types): the converter's own hook for it.
            hook = self.name("hook", self.converter.get_structure_hook(tp))
            self.add(indent, f"{var} = {hook}({var}, {self.name('type', tp)})")

    def model(self, var: str, cls: type[Any], indent: int) -> None:
        """Lines that check the JSON object ``var`` and rebind it to a ``cls``."""
        attrs.resolve_types(cls)
        self.open_models.append(cls)
        self.add(indent, f"if type({var}) is not dict: raise TypeError")
        positional: list[str] = []
        keywords: list[str] = []
        optional = f"{var}_kw"
        fields = [field for field in attrs.fields(cls) if field.init]
        if any(field.default is not attrs.NOTHING for field in fields):
            self.add(indent, f"{optional} = {{}}")
            keywords.append(f"**{optional}")
        for index, field in enumerate(fields):
            item, key = f"{var}_{index}", self.rename(field.name)
            if field.default is not attrs.NOTHING:
                # Absent on the wire: the model's default applies.
                self.add(indent, f"if {key!r} in {var}:")
                self.add(indent + 1, f"{item} = {var}[{key!r}]")
                self.check(item, field.type, indent + 1)
                self.add(indent + 1, f"{optional}[{field.alias!r}] = {item}")
                continue
            # A missing key raises KeyError: the explaining pass reports it.
            self.add(indent, f"{item} = {var}[{key!r}]")
            self.check(item, field.type, indent)
            if field.kw_only:
                keywords.insert(0, f"{field.alias}={item}")
            else:
                positional.append(item)
        model = self.name("model", cls)
        setters = _slot_setters(cls)
        if setters is None:
            self.add(indent, f"{var} = {model}({', '.join([*positional, *keywords])})")
        else:
            # Only required positional fields here (see _slot_setters), in field order.
            self.add(indent, f"{var} = _new({model})")
            for item, setter in zip(positional, setters, strict=True):
                self.add(indent, f"{self.name('set', setter)}({var}, {item})")
        self.open_models.pop()


def _sequence_container(tp: Any) -> type[Any] | None:
    args = get_args(tp)
    if get_origin(tp) is list and len(args) == 1:
        return list
    if get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple
    return None


def _slot_setters(cls: type[Any]) -> list[Any] | None:
    """Each field's slot setter, when filling the slots is all ``__init__`` does.

    Calling the attrs ``__init__`` of a frozen class costs a bound
    ``object.__setattr__`` call per field; setting the slots directly builds the
    same object in about 80% of the time. Anything more in the class (defaults,
    validators, converters, init hooks, other slots such as a cached hash)
    leaves it to ``__init__``.
    """
    fields = attrs.fields(cls)
    if any(
        f.default is not attrs.NOTHING or not f.init or f.kw_only or f.validator or f.converter
        for f in fields
    ):
        return None
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return None
    code = getattr(cls.__dict__.get("__init__"), "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return None
    if any("__new__" in vars(klass) for klass in cls.__mro__[:-1]):
        return None  # a custom __new__ must run
    slots: set[str] = set()
    for klass in cls.__mro__:
        declared = klass.__dict__.get("__slots__", ())
        slots.update([declared] if isinstance(declared, str) else declared)
    if slots - {"__weakref__"} != {f.name for f in fields}:
        return None
    descriptors = [inspect.getattr_static(cls, f.name) for f in fields]
    if not all(isinstance(d, types.MemberDescriptorType) for d in descriptors):
        return None
    return [d.__set__ for d in descriptors]


def fast_constructor(cls: Callable[..., T]) -> Callable[..., T]:
    """The attrs class ``cls``'s constructor, taking its fields in order.

    It fills the slots directly where that is all ``__init__`` would do (see
    ``_slot_setters``); otherwise it is ``cls`` itself.
    """
    setters = _slot_setters(cls)  # type: ignore[arg-type]
    if setters is None:
        return cls
    names: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params = [f"a{index}" for index in range(len(setters))]
    lines = [f"def build({', '.join(params)}):", "    obj = _new(_cls)"]
    for index, setter in enumerate(setters):
        names[f"_set{index}"] = setter
        lines.append(f"    _set{index}(obj, a{index})")
    lines.append("    return obj")
    qualname = getattr(cls, "__qualname__", repr(cls))
    exec(compile("\n".join(lines), f"<fast constructor of {qualname}>", "exec"), names)
    build: Callable[..., T] = names["build"]
    return build


def fast_attrs_hook(
    converter: cattrs.Converter,
    cls: type[Any],
    *,
    rename: Callable[[str], str],
    exact: tuple[type[Any], ...],
    parse_datetime: Callable[[str], datetime],
) -> Callable[[Any, Any], Any]:
    """Generate the fast structure function of the attrs class ``cls``.

    It must agree with ``converter``'s own hooks: keys are ``rename(field)``,
    values of the ``exact`` types must be exactly that type (the converter's
    hooks for them are that strict), timestamps go through ``parse_datetime``
    and open enums through their class.
    """
    source = _Source(converter, rename, exact, parse_datetime)
    source.model("o", cls, 1)
    name = f"structure_{cls.__name__}"
    text = "\n".join([f"def {name}(o, _=None):", *source.lines, "    return o"])
    namespace = dict(source.names)
    exec(compile(text, f"<fast structure of {cls.__qualname__}>", "exec"), namespace)
    function: Callable[[Any, Any], Any] = namespace[name]
    return function
