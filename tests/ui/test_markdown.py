"""Tests for studybuddy.ui.markdown: wiki links, foldable callouts, rewritten links, no raw HTML."""

from __future__ import annotations

from studybuddy.ui.markdown import make_renderer, render

MD = make_renderer()


def html_of(text: str, names: dict[str, str] | None = None) -> str:
    known = names or {}
    return render(MD, text, resolve=known.get, link=lambda href: f"LINK({href})")


def test_wiki_links_open_the_named_note_or_say_it_is_missing() -> None:
    html = html_of("See [[Cells|the cell]] and [[Gone]].", {"Cells": "/notes/Cells.md"})
    assert '<a class="wikilink" href="/notes/Cells.md">the cell</a>' in html
    assert '<span class="wikilink missing" title="no note named Gone">Gone</span>' in html


def test_wiki_links_are_not_taken_from_code_or_broken_brackets() -> None:
    assert "wikilink" not in html_of("`[[Cells]]` and [[ ]] and [[a\nb]]")
    assert "[[a" in html_of("[[a [b]]")


def test_callouts_fold_by_their_sign_and_keep_their_body() -> None:
    folded = html_of("> [!question]- 1. What is **ATP**?\n> The energy currency.")
    assert folded.startswith(
        '<details class="callout callout-question">\n<summary>1. What is <strong>ATP</strong>?'
    )
    assert "<p>The energy currency.</p>\n</details>" in folded
    opened = html_of("> [!Note]+ Remember\n> body")
    assert opened.startswith('<details class="callout callout-note" open>')
    titled_only = html_of("> [!tip]")
    assert titled_only == '<details class="callout callout-tip" open>\n<summary>Tip</summary>\n</details>\n'
    plain = html_of("> just a quote")
    assert plain == "<blockquote>\n<p>just a quote</p>\n</blockquote>\n"


def test_nested_quotes_inside_a_callout_close_where_they_should() -> None:
    html = html_of("> [!info] Outer\n> text\n> > inner quote\n\nafter")
    assert html.index("</blockquote>") < html.index("</details>") < html.index("<p>after</p>")


def test_links_are_rewritten_and_html_in_a_note_stays_text() -> None:
    html = html_of("[00:15](https://youtu.be/dQw4w9WgXcQ?t=15) <script>alert(1)</script>")
    assert 'href="LINK(https://youtu.be/dQw4w9WgXcQ?t=15)"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '"><' not in html_of('[[x" onmouseover="y|z]]')


def test_comment_markers_are_left_out() -> None:
    html = html_of(
        "<!-- study-buddy:related -->\n## Related notes\n\n- [[A]] <!-- /study-buddy:related -->\n"
    )
    assert "study-buddy:related" not in html and "<h2>Related notes</h2>" in html
