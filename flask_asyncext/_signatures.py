"""Decoration-time checks that a body or a hook can take the arguments it
will be called with, where the signatures involved are known.

Flask passes a view's required arguments by keyword (URL values), and a
method decorated in its class gets ``self`` positionally first; a call that
fails both ways is reported. Parameters with defaults, ``*args`` and ``**kwargs``
of the view are not checked, nor is anything whose signature is unknown.
"""

from __future__ import annotations

import inspect
import typing as t

_VIEW = object()
_EMPTY = inspect.Parameter.empty
_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD


def signature_of(obj: object) -> inspect.Signature | None:
    """The signature of ``obj`` as it is called, or ``None`` when it is
    unknown (a builtin) or takes anything (``*args, **kwargs``).
    """
    try:
        sig = inspect.signature(t.cast("t.Callable[..., t.Any]", obj))
    except (TypeError, ValueError):
        return None

    kinds = {p.kind for p in sig.parameters.values()}

    if _VAR_POSITIONAL in kinds and _VAR_KEYWORD in kinds:
        return None

    return sig


def _calls(
    view: object,
) -> tuple[list[str], list[tuple[list[object], dict[str, object]]]]:
    """The required parameters of ``view`` (its own, not those of what it
    wraps), and the ways it may be called with them.
    """
    try:
        sig = inspect.signature(
            t.cast("t.Callable[..., t.Any]", view), follow_wrapped=False
        )
    except (TypeError, ValueError):
        return [], []

    required = [
        p
        for p in sig.parameters.values()
        if p.default is _EMPTY and p.kind not in (_VAR_POSITIONAL, _VAR_KEYWORD)
    ]

    if not required:
        return [], []

    names = [p.name for p in required]
    # A function defined in a class body is a method: called with ``self``.
    qualname = getattr(view, "__qualname__", "")
    parent = qualname.rpartition(".")[0].rpartition(".")[2]
    is_method = parent not in ("", "<locals>") or names[0] in ("self", "cls")
    by_keyword: tuple[list[object], dict[str, object]] = ([], {})
    self_first: tuple[list[object], dict[str, object]] = ([], {})

    for i, p in enumerate(required):
        if p.kind is _POSITIONAL_ONLY:
            by_keyword[0].append(p.name)
        else:
            by_keyword[1][p.name] = p.name

        if p.kind is _POSITIONAL_ONLY or (
            is_method and i == 0 and p.kind is _POSITIONAL_OR_KEYWORD
        ):
            self_first[0].append(p.name)
        else:
            self_first[1][p.name] = p.name

    return names, [by_keyword, self_first]


def check_arguments(
    sig: inspect.Signature | None,
    view: object,
    culprit: str,
    *,
    takes_view: bool,
) -> None:
    """Raise :exc:`TypeError` at decoration time if a callable with the
    signature ``sig`` (a body, ``takes_view``, or a ``before_view`` hook)
    cannot take the arguments that ``view`` is called with.
    """
    if sig is None:
        return

    names, calls = _calls(view)
    errors: list[str] = []

    for args, kwargs in calls:
        try:
            sig.bind_partial(*([_VIEW] if takes_view else []), *args, **kwargs)
        except TypeError as e:
            errors.append(str(e))
        else:
            return

    if not errors:
        return

    params = sig.parameters
    has_var_keyword = any(p.kind is _VAR_KEYWORD for p in params.values())
    missing = [
        name
        for name in names
        if not has_var_keyword
        and (name not in params or params[name].kind is _POSITIONAL_ONLY)
    ]
    view_name = getattr(view, "__qualname__", None) or repr(view)
    call = "body(view, /, ...)" if takes_view else "hook(...)"
    reason = (
        f"it has no parameter {', '.join(repr(name) for name in missing)}"
        if missing
        else errors[0]
    )
    raise TypeError(
        f"{culprit} cannot take the arguments of the view {view_name!r}"
        f" ({', '.join(names)}): {reason}. It is called as {call} with the"
        " view's arguments; add the missing parameters, or take"
        " '*args, **kwargs'."
    )
