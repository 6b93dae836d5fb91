"""`Registry`: the one shape of every name-to-thing table (losses, recipes, schedules, data sets, presets).

Each table is filled where its entries are defined (a decorator on a class, or `add` for
a value), read like a dict, and refuses an unknown name with the same sentence everywhere:
"Unknown recipe 'x'; known recipes: dist, function_matching, hinton, teacher_assistant."
"""

from collections.abc import Mapping


class UnknownNameError(KeyError, ValueError):
    """A name no entry has: a ValueError for users, a KeyError for `Mapping.get` and `in`."""

    def __str__(self):
        return str(self.args[0])


class Registry(Mapping):
    """Named entries of one kind.

    Args:
        kind: what one entry is, for messages ("recipe", "distillation loss").
        plural: its plural ("recipes", "distillation losses"); default `kind + "s"`.
        case_sensitive: whether `Cosine` and `cosine` are different names.

    Example:
    >>> SCHEDULES = Registry("schedule", case_sensitive=False)
    >>> @SCHEDULES.register("linear")
    ... class Linear: ...
    >>> SCHEDULES.lookup("Linear")
    <class 'Linear'>
    """

    def __init__(self, kind, plural=None, case_sensitive=True):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.case_sensitive = case_sensitive
        self._entries = {}

    def _key(self, name):
        return name if self.case_sensitive else name.lower()

    def add(self, name, entry):
        """Register `entry` under `name`; a name already taken by another entry is an error."""
        key = self._key(name)
        if key in self._entries and self._entries[key] is not entry:
            raise ValueError(f"The {self.kind} name {name!r} is taken by {self._entries[key]!r}.")
        self._entries[key] = entry
        return entry

    def register(self, *names):
        """A class decorator: register the class under each of `names` (default its class name)."""

        def decorator(entry):
            for name in names or (entry.__name__,):
                self.add(name, entry)
            return entry

        return decorator

    def lookup(self, name):
        """The entry called `name`, or a ValueError that lists every known name."""
        key = self._key(name) if isinstance(name, str) else name
        if key not in self._entries:
            raise UnknownNameError(f"Unknown {self.kind} {name!r}; known {self.plural}: {', '.join(self.names())}.")
        return self._entries[key]

    def names(self):
        """The registered names, sorted."""
        return sorted(self._entries)

    def __getitem__(self, name):
        return self.lookup(name)

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self._entries)

    def __contains__(self, name):
        return isinstance(name, str) and self._key(name) in self._entries
