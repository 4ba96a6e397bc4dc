"""Notes as HTML: markdown-it-py (CommonMark, raw HTML off) with a small plugin for what Obsidian adds.

- `[[target|alias]]` wiki links become links to the note they name (`resolve` maps a target to a URL, or
  None when no note has that name: then the alias is shown as plain text marked missing);
- callouts (`> [!question]- Title`) become `<details>` that fold: `-` starts folded, `+` or nothing open;
- HTML comments (the markers of the related-notes block) are left out; other HTML shows as text;
- links that open a YouTube video at a second (`https://youtu.be/ID?t=S`) go to the UI's own page for that
  moment, and relative links to notes and transcripts go to the UI's note pages (`link`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import OptionsDict

Resolve = Callable[[str], str | None]
Rewrite = Callable[[str], str]

_CALLOUT = re.compile(r"\[!(?P<kind>[A-Za-z][\w-]*)\](?P<fold>[-+]?)[ \t]*(?P<title>[^\n]*)\n?")
_WIKI_END = "]]"
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)  # markers (the related-notes block), never shown


def make_renderer() -> MarkdownIt:
    """A markdown-it-py parser with tables, wiki links and foldable callouts; HTML in notes stays text."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.inline.ruler.before("link", "wikilink", _wikilink)
    md.core.ruler.after("block", "callout", _callouts)
    md.add_render_rule("wikilink", _render_wikilink)
    md.add_render_rule("callout_open", _render_callout_open)
    md.add_render_rule("callout_close", lambda *_args: "</details>\n")
    md.add_render_rule("callout_title_open", lambda *_args: "<summary>")
    md.add_render_rule("callout_title_close", lambda *_args: "</summary>\n")
    md.add_render_rule("link_open", _render_link_open)
    return md


def render(md: MarkdownIt, text: str, *, resolve: Resolve, link: Rewrite) -> str:
    """`text` (a note body, without its front matter) as HTML."""
    html: str = md.render(_COMMENT.sub("", text), {"resolve": resolve, "link": link})
    return html


def _wikilink(state: StateInline, silent: bool) -> bool:
    if not state.src.startswith("[[", state.pos):
        return False
    end = state.src.find(_WIKI_END, state.pos + 2)
    inner = state.src[state.pos + 2 : end] if end != -1 else ""
    if not inner.strip() or "\n" in inner or "[" in inner:
        return False
    if not silent:
        target, _, alias = inner.partition("|")
        token = state.push("wikilink", "a", 0)
        token.meta = {"target": target.strip(), "alias": (alias or target).strip()}
    state.pos = end + len(_WIKI_END)
    return True


def _render_wikilink(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict[str, Any]
) -> str:
    meta = tokens[idx].meta
    alias = escapeHtml(meta["alias"])
    href = env["resolve"](meta["target"])
    if href is None:
        missing = escapeHtml(meta["target"])
        return f'<span class="wikilink missing" title="no note named {missing}">{alias}</span>'
    return f'<a class="wikilink" href="{escapeHtml(href)}">{alias}</a>'


def _callouts(state: StateCore) -> None:
    """Turn a blockquote whose first line is `[!kind]` into callout tokens, before inline parsing."""
    tokens = state.tokens
    index = 0
    while index < len(tokens):
        token = tokens[index]
        match = None
        if token.type == "blockquote_open" and index + 2 < len(tokens) and tokens[index + 2].type == "inline":
            match = _CALLOUT.match(tokens[index + 2].content)
        if match is None:
            index += 1
            continue
        token.type, token.tag = "callout_open", "details"
        token.meta = {"kind": match["kind"].lower(), "open": match["fold"] != "-"}
        _closing(tokens, index, token.level).type = "callout_close"
        inline = tokens[index + 2]
        title = _token("inline", token.level + 1, match["title"] or match["kind"].title())
        heading = [
            _token("callout_title_open", token.level + 1),
            title,
            _token("callout_title_close", token.level + 1),
        ]
        inline.content = inline.content[match.end() :]
        if inline.content.strip():
            tokens[index + 1 : index + 1] = heading
        else:  # the title was all there was: no empty paragraph
            tokens[index + 1 : index + 4] = heading
        index += 1


def _closing(tokens: list[Token], start: int, level: int) -> Token:
    for token in tokens[start + 1 :]:
        if token.type == "blockquote_close" and token.level == level:
            return token
    raise ValueError("blockquote without its end")  # markdown-it always closes what it opens


def _token(kind: str, level: int, content: str = "") -> Token:
    token = Token(kind, "", 0, content=content, level=level, children=[] if kind == "inline" else None)
    token.map = None
    return token


def _render_callout_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict[str, Any]
) -> str:
    meta = tokens[idx].meta
    kind = escapeHtml(meta["kind"])
    return f'<details class="callout callout-{kind}"{" open" if meta["open"] else ""}>\n'


def _render_link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict[str, Any]
) -> str:
    token = tokens[idx]
    href = str(token.attrs.get("href", ""))
    token.attrs["href"] = env["link"](href)
    return renderer.renderToken(tokens, idx, options, env)
