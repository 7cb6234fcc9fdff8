"""Go regular expressions as ESO applies them, matched in linear time by RE2 (``google-re2``).

ESO's azurekv provider keeps a secret for ``dataFrom[].find`` when Go's
``regexp.MatchString(find.name.regexp, name)`` is true (``okByName`` in
``providers/v1/azure/keyvault/keyvault.go``, ESO v2.9.0): unanchored, case-sensitive unless the
pattern says ``(?i)``, and a pattern Go cannot compile selects nothing (the error is dropped). The
same call checks a ClusterSecretStore's ``spec.conditions[].namespaceRegexes``. Python's :mod:`re`
backtracks (``(a|a)*b`` never finishes on 127 characters), so anyone allowed to create an
ExternalSecret could stall the rotator; RE2 runs in linear time, and Go's syntax is RE2's.

Go's ``regexp/syntax`` (``parse.go``) and C++ RE2 agree on what an accepted pattern means for
ASCII text (Key Vault names are 1-127 characters of ``[0-9A-Za-z-]``; namespaces are DNS labels):
both cap a count at 1000, and the product of nested counts; read ``{,n}``, ``{01}`` and any other
``{`` that is not a repeat as a literal; have ``\\Q...\\E``, ``(?P<n>`` and ``(?<n>``, only the
flags ``i m s U``, ASCII ``\\d \\s \\w \\b``, ``$`` as end of text, Unicode simple case folding;
and refuse stacked repeats (``a**``, ``a{2}*``), ``\\Z``, backreferences and lookarounds. Where
they differ on acceptance, :func:`_go_refusal` reproduces Go once RE2 has accepted a pattern:

- ``\\C`` (any byte): RE2 accepts it, Go refuses.
- Capture names: Go allows ``[A-Za-z0-9_]+``; RE2 also Unicode letters and digits.
- A count of ten or more digits (``a{1000000000}``): Go refuses; RE2 reads ``{`` as a literal.
- Go refuses a parse tree taller than :data:`MAX_HEIGHT` or an estimated program larger than
  :data:`MAX_SIZE`; RE2 has no height limit, and simplifies (``(?:a*a*){1000}``) before its own
  size limit. 1000 nested capturing groups are refused; beyond that this module computes upper
  bounds (:class:`_Group`), and a pattern over either is reported as not evaluated.
- ``\\p`` names: Go 1.25 added aliases (``\\p{Letter}``), ``ASCII``, ``Assigned``, ``Cn``, ``LC``
  and case-insensitive lookup, and since refuses script names with an underscore
  (``\\p{Old_Italic}``) that RE2 and older Go accept; Unicode versions differ too. Only the general
  categories and ``Any`` are evaluated (Go 1.25's ``C`` adds unassigned code points; no ASCII).

RE2 refuses some patterns Go may accept: the ``\\p`` names above, a program over :data:`MAX_MEM`,
and nested counts whose product passes 1000 only through a ``{0}``, which Go exempts. All of these
get ``go_rejects`` False: reported as not evaluated, never guessed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_HEIGHT = 1000  # Go's maxHeight: the tallest parse tree regexp.Compile accepts
MAX_SIZE = (128 << 20) // 40  # Go's maxSize: its estimate of the compiled program, in instructions
MAX_COUNT = 1000  # Go's and RE2's maxRepeat
MAX_MEM = 1 << 20  # RE2's budget per pattern (a Key Vault name pattern needs a few KiB)
_CATEGORIES = frozenset("Any C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po "
                        "Ps S Sc Sk Sm So Z Zl Zp Zs".split())
_SURROGATE = re.compile("[\ud800-\udfff]")  # Go's JSON decoding turns a lone one into U+FFFD
_ZERO_COUNT = re.compile(r"\{0(?:,0)?\}")
# Escape-aware lexemes; \C and \Q never appear in a class RE2 accepts, and \p is the same in one.
_LEXEME = re.compile(r"\\Q.*?(?:\\E|\Z)|\\(?:(?P<C>C)|[pP](?:\{\^?(?P<name>[^}]*)\}|(?P<letter>.))|.)|.",
                     re.S)
# Tokens of a pattern RE2 accepted, for the shape of Go's parse tree.
_TOKEN = re.compile(r"""
    \\Q(?P<quoted>.*?)(?:\\E|\Z)
  | \\(?:[pPx]\{[^}]*\}|.)
  | (?P<cls>\[\^?\]?(?:\[:\^?[a-z]+:\]|\\(?:[pPx]\{[^}]*\}|.)|[^]\\])*\])
  | (?P<named>\(\?P?<(?P<capture>[^>]*)>)
  | (?P<flags>\(\?[^:)]*\))
  | (?P<open>\((?:\?[^:)]*:)?)
  | (?P<close>\))
  | (?P<bar>\|)
  | (?P<repeat>(?:[*+?]|\{(?P<low>0|[1-9][0-9]*)(?P<comma>,(?P<high>0|[1-9][0-9]*)?)?\})\??)
  | .
""", re.S | re.X)


@dataclass
class _Group:
    """An open group, with upper bounds on the height and size of the tree Go's parser makes of it."""

    capturing: bool
    branches: int = 0
    items: int = 0  # in the current branch
    longest: int = 0  # items in the longest finished branch
    tallest: int = 1  # height of the tallest finished item
    last: int = 0  # height of the last item, which a repeat operator raises
    size: int = 0  # Go's calcSize of the finished branches
    branch: int = 0  # ... of the current branch
    last_size: int = 0  # ... of its last item

    def add(self, height: int = 1, size: int = 1, count: int = 1) -> None:
        if count:
            self.tallest, self.items = max(self.tallest, self.last), self.items + count
            self.last, self.last_size, self.branch = height, size, self.branch + size * count

    def repeat(self, low: int, high: int | None) -> None:
        sub = self.last_size
        size = (2 + sub if low == 0 else 1 + low * sub) if high is None else high * sub + high - low
        self.last, self.last_size, self.branch = self.last + 1, max(size, 1), self.branch - sub + max(size, 1)

    def bar(self) -> None:
        self.tallest, self.last = max(self.tallest, self.last), 0
        self.longest, self.items, self.branches = max(self.longest, self.items), 0, self.branches + 1
        self.size, self.branch = self.size + max(self.branch, 1), 0

    def close(self) -> tuple[int, int]:
        """Height: capture, alternation plus two levels per item Go's prefix factoring can strip,
        concatenation, tallest item. Size: Go's ``calcSize`` before factoring, which only shrinks it."""
        self.bar()
        alternation = 1 + 2 * self.longest if self.branches > 1 else 0
        height = self.capturing + alternation + (self.longest > 1) + self.tallest
        return height, 2 * self.capturing + self.size + self.branches - 1


def _go_refusal(pattern: str) -> tuple[str, bool] | None:
    """Why Go may refuse a pattern RE2 accepted, and whether it surely does; None if it accepts it."""
    for lexeme in _LEXEME.finditer(pattern):
        if lexeme["C"]:
            return "\\C (any byte) is RE2 syntax that Go refuses", True
        name = lexeme["name"] if lexeme["name"] is not None else lexeme["letter"]
        if name is not None and name not in _CATEGORIES:
            return (f"Unicode class \\p{{{name}}}: only general categories and Any are evaluated here, "
                    "as Go's other \\p names depend on its version", False)
    return _shape_refusal(pattern)


def _shape_refusal(pattern: str) -> tuple[str, bool] | None:
    """Go's refusals that depend on the pattern's structure: capture names, counts, nesting, size."""
    groups, captures, deepest, largest = [_Group(capturing=False)], 0, 0, 0
    for token in _TOKEN.finditer(pattern):
        top, kind = groups[-1], token.lastgroup
        if kind == "named" and not re.fullmatch("[A-Za-z0-9_]+", token["capture"]):
            return f"invalid named capture {token['capture']!r}: Go allows only [A-Za-z0-9_]+", True
        if kind == "repeat" and any(len(count or "") >= 10 for count in (token["low"], token["high"])):
            return f"repeat count {token[0]} is too large for Go (RE2 reads it as a literal)", True
        if kind in ("named", "open"):
            groups.append(_Group(capturing=kind == "named" or token[0] == "("))
            captures += groups[-1].capturing
            deepest = max(deepest, captures)
        elif kind == "close" and len(groups) > 1:
            captures -= groups[-1].capturing
            height, size = groups.pop().close()
            largest = max(largest, size)
            groups[-1].add(height, size)
        elif kind == "bar":
            top.bar()
        elif kind == "repeat" and token["low"] is None:
            top.repeat(int(token[0][0] == "+"), 1 if token[0][0] == "?" else None)
        elif kind == "repeat":
            high = token["high"] if token["comma"] else token["low"]
            top.repeat(int(token["low"]), int(high) if high else None)
        elif kind != "flags":
            top.add(count=len(token["quoted"]) if kind == "quoted" else 1)
    height, size = groups[0].close()
    if deepest >= MAX_HEIGHT:
        return f"capturing groups nest {deepest} deep: Go refuses parse trees over {MAX_HEIGHT} tall", True
    if height > MAX_HEIGHT:
        return f"it may nest deeper than Go's limit of {MAX_HEIGHT}", False
    if max(largest, size) > MAX_SIZE:
        return f"Go may find it too large (its estimate exceeds {MAX_SIZE} instructions)", False
    return None


def _re2_refusal(pattern: str, exc: Exception) -> tuple[str, bool]:
    """RE2's reason for refusing ``pattern``, and whether Go surely refuses it too."""
    raw = exc.args[0] if exc.args else exc
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "pattern too large" in message:
        return f"{message} (RE2's budget is {MAX_MEM} bytes per pattern)", False
    if re.match(r"invalid character class range: \\[pP]", message):
        return f"{message} (Go 1.25 and later accept more \\p names)", False
    size = re.fullmatch(r"invalid repetition size: \{(\d+)(?:,(\d*))?\}", message)
    if size and int(size[1]) <= int(size[2] or MAX_COUNT) <= MAX_COUNT and _ZERO_COUNT.search(pattern):
        return f"{message} (nested counts; Go exempts those under {{0}})", False  # the count alone is valid
    return message, True


@functools.cache
def _options() -> object:
    import re2  # on first use: only ESO's find regexps and namespaceRegexes need RE2

    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # a refused pattern is reported by the caller, not logged by C++
    options.never_capture = True  # only "does it match anywhere" is asked
    return options


@dataclass(frozen=True)
class GoRegexp:
    """A compiled pattern, or why it is not evaluated (``problem``)."""

    pattern: str
    problem: str | None = None
    go_rejects: bool = False  # Go's regexp.Compile refuses it too (so ESO's find selects nothing)
    _search: Callable[[str], object] | None = field(default=None, repr=False, compare=False)

    def search(self, text: str) -> bool:
        """Go's ``regexp.MatchString(pattern, text)``; False for a pattern with a problem."""
        return self._search is not None and self._search(_SURROGATE.sub("\ufffd", text)) is not None


@functools.lru_cache(maxsize=64)
def compile_go(pattern: str) -> GoRegexp:
    """Compile ``pattern`` as Go would; never raises."""
    import re2  # on first use: only ESO's find regexps and namespaceRegexes need RE2

    go_pattern = _SURROGATE.sub("\ufffd", pattern)
    try:
        compiled = re2.compile(go_pattern, _options())
    except re2.error as exc:
        problem, go_rejects = _re2_refusal(go_pattern, exc)
        return GoRegexp(pattern, problem=problem, go_rejects=go_rejects)
    refusal = _go_refusal(go_pattern)
    if refusal is not None:
        return GoRegexp(pattern, problem=refusal[0], go_rejects=refusal[1])
    return GoRegexp(pattern, _search=compiled.search)
