"""Tests for studybuddy.inputs: URL forms, file reading, bad lines and deduplication."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studybuddy.errors import InputError
from studybuddy.models import VIDEO_ID_PATTERN
from studybuddy.text import BadInput
from studybuddy.youtube.inputs import Collection, Inputs, parse_video_id, read_inputs

VIDEO = "dQw4w9WgXcQ"
OTHER = "a_b-C0d1E2f"
THIRD = "-----------"
PLAYLIST_URL = "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG"
CHANNEL_URL = "https://www.youtube.com/@veritasium/videos"

# Every video URL form, with {id} where the video id goes.
URL_FORMS = [
    "https://www.youtube.com/watch?v={id}",
    "http://www.youtube.com/watch?v={id}",
    "www.youtube.com/watch?v={id}",
    "youtube.com/watch?v={id}",
    "https://youtube.com/watch?v={id}",
    "https://m.youtube.com/watch?v={id}",
    "https://music.youtube.com/watch?v={id}",
    "https://WWW.YouTube.com/watch?v={id}",
    "//www.youtube.com/watch?v={id}",
    "https://www.youtube.com/watch?feature=share&v={id}",
    "https://www.youtube.com/watch?v={id}&t=42s",
    "https://www.youtube.com/watch?v={id}&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=3",
    "https://www.youtube.com/watch?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&v={id}",
    "https://www.youtube.com/watch?v={id}&feature=youtu.be",
    "https://www.youtube.com/watch?v={id}#t=1m30s",
    "https://www.youtube.com/watch/?v={id}",
    "https://youtu.be/{id}",
    "youtu.be/{id}",
    "http://youtu.be/{id}",
    "https://youtu.be/{id}?si=AbCdEfGhIjKlMnOp",
    "https://youtu.be/{id}?t=30",
    "https://youtu.be/{id}/",
    "https://www.youtube.com/shorts/{id}",
    "https://youtube.com/shorts/{id}?feature=share",
    "https://www.youtube.com/embed/{id}",
    "https://www.youtube.com/embed/{id}?start=10&autoplay=1",
    "https://www.youtube.com/live/{id}",
    "https://www.youtube.com/live/{id}?si=xyz",
    "https://www.youtube.com/v/{id}",
    "https://www.youtube.com/v/{id}?version=3",
    "https://www.youtube.com/e/{id}",
    "https://www.youtube-nocookie.com/embed/{id}",
    "https://youtube-nocookie.com/embed/{id}?rel=0",
    "m.youtube.com/shorts/{id}",
    "  https://www.youtube.com/watch?v={id}  ",
    "\thttps://youtu.be/{id}\n",
    "<https://www.youtube.com/watch?v={id}>",
    " <youtu.be/{id}> ",
    "{id}",
    "  {id}  ",
]


@pytest.mark.parametrize("form", URL_FORMS)
@pytest.mark.parametrize("video_id", [VIDEO, OTHER, THIRD])
def test_every_video_url_form_gives_its_id(form: str, video_id: str) -> None:
    assert parse_video_id(form.format(id=video_id)) == video_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "<>",
        "dQw4w9WgXc",  # 10 characters
        "dQw4w9WgXcQQ",  # 12 characters
        "dQw4w9WgXc!",
        "https://vimeo.com/76979871",
        f"https://vimeo.com/{VIDEO}",
        f"https://notyoutube.com/watch?v={VIDEO}",
        f"https://youtube.com.evil.org/watch?v={VIDEO}",
        f"https://www.youtube.com@evil.org/watch?v={VIDEO}",
        f"https://evil.org/?next=youtube.com/watch?v={VIDEO}",
        f"https://youtu.be.evil.org/{VIDEO}",
        f"ftp://www.youtube.com/watch?v={VIDEO}",
        f"javascript:alert('{VIDEO}')",
        "https://www.youtube.com/watch?v=dQw4w9WgXc",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQQ",
        "https://www.youtube.com/watch?v=",
        "https://www.youtube.com/watch",
        f"https://www.youtube.com/watch?vv={VIDEO}",
        "https://youtu.be/dQw4w9WgXc",
        "https://youtu.be/",
        f"https://youtu.be/{VIDEO}/extra",
        "https://www.youtube.com/shorts/dQw4w9WgXcQQ",
        "https://www.youtube.com/embed/",
        f"https://www.youtube.com/embed/{VIDEO}/more",
        f"https://www.youtube.com/clip/{VIDEO}",
        f"https://www.youtube-nocookie.com/shorts/{VIDEO}",
        f"https://www.youtube-nocookie.com/watch?v={VIDEO}",
        f"https://youtu.be/watch?v={VIDEO}",
        "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
        "https://www.youtube.com/@veritasium",
        "https://[www.youtube.com/watch?v=dQw4w9WgXcQ",
        f"http://www.youtube.com:99999999/watch?v={VIDEO} trailing",
        f"{VIDEO} {OTHER}",
    ],
)
def test_other_text_gives_no_id(text: str) -> None:
    assert parse_video_id(text) is None


VIDEO_IDS = st.from_regex(VIDEO_ID_PATTERN, fullmatch=True)


@given(video_id=VIDEO_IDS, form=st.sampled_from(URL_FORMS))
def test_round_trip_every_form(video_id: str, form: str) -> None:
    assert parse_video_id(form.format(id=video_id)) == video_id


@given(
    video_id=VIDEO_IDS,
    extra=st.lists(
        st.tuples(
            st.sampled_from(["t", "list", "feature", "index", "si", "pp"]),
            st.from_regex(r"[A-Za-z0-9_.~-]{0,20}", fullmatch=True),
        ),
        max_size=4,
    ),
    position=st.integers(min_value=0, max_value=4),
)
def test_watch_id_found_among_any_other_parameters(
    video_id: str, extra: list[tuple[str, str]], position: int
) -> None:
    parameters = [f"{name}={value}" for name, value in extra]
    parameters.insert(min(position, len(parameters)), f"v={video_id}")
    assert parse_video_id(f"https://www.youtube.com/watch?{'&'.join(parameters)}") == video_id


@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    result = parse_video_id(text)
    assert result is None or VIDEO_ID_PATTERN.fullmatch(result)


@given(st.text(alphabet=st.sampled_from("[]:/@?#&=%.<> \t\x00ywoutube.com"), max_size=60))
def test_url_like_noise_never_raises(text: str) -> None:
    for candidate in (text, f"https://{text}", f"youtube.com/{text}"):
        result = parse_video_id(candidate)
        assert result is None or VIDEO_ID_PATTERN.fullmatch(result)


# read_inputs


def write(tmp_path: Path, content: str | bytes, name: str = "urls.txt") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def test_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# my course\n"
        "\n"
        f"https://youtu.be/{VIDEO}  # intro lecture\n"
        "   \n"
        "    # indented comment\n"
        f"https://www.youtube.com/watch?v={OTHER}#t=30\n"
        f"{THIRD}\t# tab before the comment\n",
    )
    inputs = read_inputs([], [path])
    assert inputs == Inputs(video_ids=[VIDEO, OTHER, THIRD], bad=[], duplicates=0)


def test_file_accepts_crlf_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, f"\ufeff{VIDEO}\r\n\r\nhttps://youtu.be/{OTHER}\r\n".encode())
    assert read_inputs([], [path]).video_ids == [VIDEO, OTHER]


def test_bad_lines_are_reported_with_their_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, f"# header\n{VIDEO}\n\nhttp://x\nhttps://vimeo.com/1#t=3 # fragment kept\n")
    inputs = read_inputs([], [path])
    assert inputs.video_ids == [VIDEO]
    assert [bad.message for bad in inputs.bad] == [
        f"{path}:4: not a YouTube video URL: 'http://x'",
        f"{path}:5: not a YouTube video URL: 'https://vimeo.com/1#t=3'",
    ]


def test_bad_input_message_format() -> None:
    bad = BadInput("urls.txt:7", "http://x", "not a YouTube video URL")
    assert bad.message == "urls.txt:7: not a YouTube video URL: 'http://x'"


def test_invalid_utf8_line_is_bad_and_other_lines_still_parse(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"{VIDEO}\ncaf\xe9-\xff\xfe\n# comment with latin-1 \xe9\n{OTHER}\n".encode("latin-1")
    )
    inputs = read_inputs([], [path])
    assert inputs.video_ids == [VIDEO, OTHER]
    assert len(inputs.bad) == 1
    assert inputs.bad[0].source == f"{path}:2"
    assert inputs.bad[0].reason == "not valid UTF-8"
    assert inputs.bad[0].text.startswith("caf")


def test_huge_line_is_bad_with_shortened_text(tmp_path: Path) -> None:
    huge = "https://www.youtube.com/watch?v=" + "x" * 10_000_000
    path = write(tmp_path, f"{VIDEO}\n{huge}\n{OTHER}\n")
    inputs = read_inputs([], [path])
    assert inputs.video_ids == [VIDEO, OTHER]
    assert len(inputs.bad) == 1
    assert inputs.bad[0].source == f"{path}:2"
    assert inputs.bad[0].text.startswith("https://www.youtube.com/watch?v=xxx")
    assert len(inputs.bad[0].text) <= 80
    assert inputs.bad[0].text.endswith("...")
    assert len(inputs.bad[0].message) < 200


def test_huge_line_of_spaces_and_hashes(tmp_path: Path) -> None:
    path = write(tmp_path, f"{' ' * 5_000_000}x{' ' * 5_000_000}\n{'#' * 1_000_000}\n{VIDEO}\n")
    inputs = read_inputs([], [path])
    assert inputs.video_ids == [VIDEO]
    assert [bad.text for bad in inputs.bad] == ["x"]


def test_ten_thousand_lines(tmp_path: Path) -> None:  # timing: scripts/bench_core
    forms = ["https://www.youtube.com/watch?v={id}&t=1s", "https://youtu.be/{id}?si=abc", "{id}", "# note"]
    lines = [forms[number % 4].format(id=f"{number:011d}") for number in range(10_000)]
    path = write(tmp_path, "\n".join(lines))
    inputs = read_inputs([], [path])
    assert len(inputs.video_ids) == 7_500


@pytest.mark.parametrize(
    ("text", "kind", "url"),
    [
        (
            "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
            "playlist",
            PLAYLIST_URL,
        ),
        ("youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "playlist", PLAYLIST_URL),
        (
            "https://m.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&si=x",
            "playlist",
            PLAYLIST_URL,
        ),
        ("https://www.youtube.com/watch?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "playlist", PLAYLIST_URL),
        ("https://www.youtube.com/@veritasium", "channel", CHANNEL_URL),
        ("https://www.youtube.com/@veritasium/videos", "channel", CHANNEL_URL),
        ("https://www.youtube.com/@veritasium/shorts", "channel", CHANNEL_URL),
        (
            "https://www.youtube.com/channel/UCHnyfMqiRRG1u-2MsSQLbXA",
            "channel",
            "https://www.youtube.com/channel/UCHnyfMqiRRG1u-2MsSQLbXA/videos",
        ),
        ("https://www.youtube.com/c/veritasium", "channel", "https://www.youtube.com/c/veritasium/videos"),
        (
            "https://www.youtube.com/user/1veritasium/videos",
            "channel",
            "https://www.youtube.com/user/1veritasium/videos",
        ),
        ("<https://www.youtube.com/@veritasium>", "channel", CHANNEL_URL),
    ],
)
def test_playlists_and_channels_become_collections_to_expand(text: str, kind: str, url: str) -> None:
    inputs = read_inputs([text], [])
    assert inputs.video_ids == [] and inputs.bad == []
    assert inputs.collections == [Collection(kind, url, "argument 1", text.strip())]  # type: ignore[arg-type]


def test_the_same_collection_twice_is_a_duplicate() -> None:
    inputs = read_inputs(["https://www.youtube.com/@veritasium", CHANNEL_URL, PLAYLIST_URL], [])
    assert [collection.url for collection in inputs.collections] == [CHANNEL_URL, PLAYLIST_URL]
    assert inputs.duplicates == 1


def test_a_playlist_url_holding_a_video_id_is_a_clear_bad_input() -> None:
    text = f"https://www.youtube.com/playlist?list={VIDEO}"
    inputs = read_inputs([text], [])
    assert inputs.collections == []
    assert inputs.bad == [
        BadInput(
            "argument 1", text, f"a video id, not a playlist: use https://www.youtube.com/watch?v={VIDEO}"
        )
    ]


@pytest.mark.parametrize(
    "text",
    [
        "https://www.youtube.com/playlist",
        "https://www.youtube.com/c",
        "https://www.youtube.com/feed/subscriptions",
        "https://vimeo.com/@someone",
        "https://youtu.be/@someone",
    ],
)
def test_other_youtube_pages_are_not_videos(text: str) -> None:
    assert read_inputs([text], []).bad == [BadInput("argument 1", text, "not a YouTube video URL")]


def test_watch_url_with_a_playlist_is_the_video() -> None:
    inputs = read_inputs(
        [f"https://www.youtube.com/watch?v={VIDEO}&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG"], []
    )
    assert inputs == Inputs(video_ids=[VIDEO], bad=[], duplicates=0)


def test_duplicates_collapse_in_first_seen_order_across_arguments_and_files(tmp_path: Path) -> None:
    first = write(tmp_path, f"https://youtu.be/{OTHER}\n{VIDEO}\n{THIRD}\n", name="first.txt")
    second = write(tmp_path, f"https://www.youtube.com/shorts/{THIRD}\n{OTHER}\n", name="second.txt")
    inputs = read_inputs([VIDEO, f"https://www.youtube.com/watch?v={VIDEO}&t=3"], [first, second])
    assert inputs.video_ids == [VIDEO, OTHER, THIRD]
    assert inputs.duplicates == 4
    assert inputs.bad == []


def test_bad_arguments_are_numbered() -> None:
    inputs = read_inputs([VIDEO, "nope", "https://vimeo.com/1"], [])
    assert inputs.video_ids == [VIDEO]
    assert [bad.source for bad in inputs.bad] == ["argument 2", "argument 3"]


def test_only_bad_lines_is_not_an_error(tmp_path: Path) -> None:
    inputs = read_inputs([], [write(tmp_path, "http://x\n")])
    assert inputs.video_ids == []
    assert len(inputs.bad) == 1


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    with pytest.raises(InputError, match=r"^.*urls\.txt: no such file$"):
        read_inputs([VIDEO], [path])


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_inputs([VIDEO], [tmp_path])
    assert str(caught.value) == f"{tmp_path}: is a directory, not a file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"{VIDEO}\n")
    path.chmod(0)
    try:
        with pytest.raises(InputError) as caught:
            read_inputs([], [path])
    finally:
        path.chmod(0o600)
    assert str(caught.value) == f"{path}: permission denied"


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EIO, "Input/output error"), "cannot be read (Input/output error)"),
    ],
)
def test_read_errors_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, problem: str
) -> None:
    """The same messages as above, also where tests run as root and chmod cannot make a file unreadable."""
    path = write(tmp_path, f"{VIDEO}\n")

    def refuse(self: Path) -> bytes:
        raise error

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(InputError) as caught:
        read_inputs([], [path])
    assert str(caught.value) == f"{path}: {problem}"


def test_file_with_only_comments_and_blanks_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n\n   \n  # still nothing\n")
    with pytest.raises(InputError) as caught:
        read_inputs([], [path])
    assert str(caught.value) == f"{path}: no video URLs in the file (only blank lines and comments)"


def test_several_empty_files_are_all_named(tmp_path: Path) -> None:
    first = write(tmp_path, "", name="a.txt")
    second = write(tmp_path, "# x\n", name="b.txt")
    with pytest.raises(InputError) as caught:
        read_inputs([], [first, second])
    assert (
        str(caught.value) == f"{first}, {second}: no video URLs in the files (only blank lines and comments)"
    )


def test_empty_file_next_to_a_video_argument_is_fine(tmp_path: Path) -> None:
    assert read_inputs([VIDEO], [write(tmp_path, "")]).video_ids == [VIDEO]


def test_nothing_given_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no video URLs or ids given"):
        read_inputs([], [])
