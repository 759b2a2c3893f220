"""A Sphinx extension that reads npflows' docstrings as they are written: plain text with Unicode
mathematics, meant for ``help()`` and the source as much as for the HTML reference.

Some habits of that style mean something else in reStructuredText, and would otherwise break the
build or garble the page:

- bars, as in |det Ω| or |x|, are substitution references in reStructuredText;
- a star in a shape, as in (N, *event_shape), starts an emphasis;
- the first line of an attribute's docstring is read by napoleon as "type: description" when it
  holds a colon;
- a name with a trailing underscore, as in scikit-learn's ``mean_``, is a hyperlink reference;
- an equation indented under the sentence that introduces it is a block quote (or, without a blank
  line, a docutils error), whose lines would be joined into one paragraph;
- a list needs blank lines around it, which plain text often leaves out.

Before napoleon reads the Google-style sections, this hook escapes bars, such stars and trailing underscores
outside inline literals, puts blank lines around lists, and turns each indented block outside
those sections into a literal block, so that equations keep their lines and alignment. Everything else (roles such as :class:, inline literals, the Args/Returns
sections) is left to docutils and napoleon.
"""

from __future__ import annotations

import re

SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Keyword Args|Returns|Return|Yields|Raises|Attributes|"
    r"Examples?|Notes?|Warnings?|References|See Also|Methods|Other Parameters):\s*$"
)
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+\.)\s+")
LITERAL = re.compile(r"(``.+?``|:\w+:`[^`]+`)")  # inline literals and roles, left as they are
TRAILING_UNDERSCORE = re.compile(r"(\w)_(?![\w`])")
SINGLE_COLON = re.compile(r"(?<!:):(?!:)")
# A shape written as Python unpacks it, "(N, *event_shape)": a star that starts no emphasis.
UNPACKING_STAR = re.compile(r"\*(?=[\w.]+\))")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape(text: str) -> str:
    text = UNPACKING_STAR.sub(r"\\*", text.replace("|", r"\|"))
    return TRAILING_UNDERSCORE.sub(r"\1\\_", text)


def _escape_bars(line: str) -> str:
    """``|`` → ``\\|`` and ``name_`` → ``name\\_`` outside inline literals and roles."""
    parts = LITERAL.split(line)  # the literals and roles are the odd-numbered parts
    return "".join(p if k % 2 else _escape(p) for k, p in enumerate(parts))


def _is_continuation(previous: str, line: str) -> bool:
    """Whether ``line`` continues the list item ``previous`` (indented to the item's text)."""
    item = LIST_ITEM.match(previous)
    return item is not None and _indent(line) == item.end()


def literal_equations(lines: list[str]) -> list[str]:
    """The docstring ``lines`` with bars escaped and indented equation blocks made literal."""
    out: list[str] = []
    section_indent = None  # indentation of the current Args/Returns/... header, if inside one
    previous = ""  # the last non-blank line seen outside a literal block
    list_indent = None  # indentation of the items of the list being read, if any
    i = 0
    while i < len(lines):
        line = lines[i]
        if section_indent is not None and line.strip() and _indent(line) <= section_indent:
            section_indent = None
        if SECTION.match(line):
            section_indent = _indent(line)
        starts_block = (
            section_indent is None
            and line.strip()
            and previous.strip()
            and _indent(line) > _indent(previous)
            and not _is_continuation(previous, line)
            and not previous.rstrip().endswith("::")
            and not line.lstrip().startswith(">>>")
        )
        if not starts_block:
            if (
                LIST_ITEM.match(line)
                and out
                and out[-1].strip()
                and not LIST_ITEM.match(previous)
                and _indent(previous) == _indent(line)
            ):
                out.append("")  # a list needs a blank line before it
            item = LIST_ITEM.match(line)
            if item:
                list_indent = _indent(line)
            elif not line.strip():
                list_indent = None
            elif list_indent is not None and _indent(line) <= list_indent:
                out.append("")  # and after it
                list_indent = None
            out.append(_escape_bars(line))
            if line.strip():
                previous = line
            i += 1
            continue
        # The block: this line and every following line indented deeper than ``previous``
        # (blank lines inside it included), kept verbatim.
        base = _indent(previous)
        end = i
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
            end += 1
        while end > i and not lines[end - 1].strip():
            end -= 1
        while out and not out[-1].strip():
            out.pop()
        out[-1] = out[-1] + " ::"  # " ::" ends a paragraph with a literal block, printing nothing
        out.append("")
        out.extend(lines[i:end])
        out.append("")
        i = end
    return out


def _process(app, what, name, obj, options, lines):
    lines[:] = literal_equations(lines)
    if what in ("attribute", "property", "data") and lines:
        lines[:] = sentence_first(lines)


def sentence_first(lines: list[str]) -> list[str]:
    """An attribute's docstring with the text after the first line's colon moved to a line of its
    own: napoleon reads "before: after" on that line as "type: description", but these docstrings
    begin with a sentence ("The shape of one x (the data side): ...")."""
    parts = LITERAL.split(lines[0])  # the literals and roles are the odd-numbered parts
    for k in range(0, len(parts), 2):
        colon = SINGLE_COLON.search(parts[k])
        if colon:
            before = "".join(parts[:k]) + parts[k][: colon.end()]
            after = (parts[k][colon.end() :] + "".join(parts[k + 1 :])).strip()
            return [before, after, *lines[1:]] if after else lines
    return lines


def setup(app):
    # Priority below the default 500, so that this runs before napoleon reads the sections.
    app.connect("autodoc-process-docstring", _process, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
