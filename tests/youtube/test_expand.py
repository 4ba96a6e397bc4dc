"""Playlists and channels listed with yt-dlp against a `responses` fake YouTube; pacing, retries, ordering."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from studybuddy.errors import BlockedError, InputError, TransientError
from studybuddy.youtube.expand import ExpansionError, ListedVideo, list_videos, order_videos
from tests.fakes import youtube_lists as yl

PLAYLIST_ID = "PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG"
PLAYLIST_URL = f"https://www.youtube.com/playlist?list={PLAYLIST_ID}"
CHANNEL_ID = "UC" + "x" * 22
CHANNEL_URL = "https://www.youtube.com/@lectures/videos"
PAGE = re.compile(r"https://www\.youtube\.com/(playlist\?list=|@|channel/).*")
BROWSE = re.compile(r"https://www\.youtube\.com/youtubei/v1/browse\?.*")
OTHER = re.compile(r"https://www\.youtube\.com/(?!playlist\?list=|@|channel/|youtubei/v1/browse\?).*")


def listed(count: int, *, published: str = "3 weeks ago") -> tuple[yl.ListedVideo, ...]:
    return tuple(
        yl.ListedVideo(f"vid{n:08d}", f"Lecture {n}", 600 + (n * 37) % 900, published) for n in range(count)
    )


class FakeSite:
    """Serves playlists and channels by URL, answers continuations, counts page requests."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.lists: dict[str, yl.FakeList] = {}
        self.pages: dict[str, str] = {}  # URL -> HTML for pages that are not lists (gone playlists)
        self.status: list[int] = []  # statuses for the next page requests
        self.requests: list[str] = []
        self.on_page: Callable[[str], None] = lambda url: None  # called with each page request's URL
        mock.add_callback(responses.GET, PAGE, callback=self._page)
        mock.add_callback(responses.POST, BROWSE, callback=self._browse)
        for method in (responses.GET, responses.POST):  # whatever else yt-dlp tries (resolve_url, ...)
            mock.add_callback(method, OTHER, callback=self._other)

    def add(self, url: str, fake: yl.FakeList) -> None:
        self.lists[fake.list_id] = fake
        self.pages[url] = yl.list_page(fake)

    def _page(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.requests.append(str(request.url))
        self.on_page(str(request.url))
        if self.status:
            return self.status.pop(0), {}, "Too Many Requests"
        page = self.pages.get(str(request.url).split("&")[0])
        return (200, {}, page) if page else (404, {}, "Not Found")

    def _other(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.requests.append(str(request.url))
        return (self.status.pop(0), {}, "Too Many Requests") if self.status else (404, {}, "Not Found")

    def _browse(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if self.status:
            return self._other(request)
        self.requests.append("browse")
        answer = yl.browse_answer(self.lists, request.body if isinstance(request.body, bytes) else b"")
        assert answer is not None
        return 200, {}, json.dumps(answer)


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeSite(mock)


def session() -> requests.Session:
    return requests.Session()


def test_a_playlist_lists_every_video_in_order_with_titles_and_durations(site: FakeSite) -> None:
    videos = listed(250)
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", videos))

    result = list_videos(PLAYLIST_URL, session())

    assert [v.video_id for v in result] == [v.video_id for v in videos]
    assert result[7] == ListedVideo(
        "vid00000007", "Lecture 7", float(videos[7].duration), result[7].upload_date
    )
    assert site.requests == [PLAYLIST_URL, "browse", "browse", "browse"]  # with hidden videos, pages of 100


def with_holes() -> tuple[yl.ListedVideo, ...]:
    """A course whose third video was made private and whose fifth was deleted."""
    videos = list(listed(6))
    videos[2] = dataclasses.replace(videos[2], unavailable="private")
    videos[4] = dataclasses.replace(videos[4], unavailable="deleted")
    return tuple(videos)


def test_private_and_deleted_videos_of_a_playlist_are_listed_as_such(site: FakeSite) -> None:
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", with_holes()))

    result = list_videos(PLAYLIST_URL, session())

    assert [(v.video_id, v.unavailable) for v in result] == [
        ("vid00000000", None),
        ("vid00000001", None),
        ("vid00000002", "private video"),
        ("vid00000003", None),
        ("vid00000004", "deleted video"),
        ("vid00000005", None),
    ]
    assert result[2].title is None and result[4].duration is None  # a placeholder is not a title
    assert result[3].title == "Lecture 3"
    assert site.requests == [PLAYLIST_URL, "browse"]  # the page, then the list with its hidden videos


def test_an_entry_whose_id_is_not_a_video_id_is_left_out_with_a_warning(
    site: FakeSite, caplog: pytest.LogCaptureFixture
) -> None:
    odd = ("../../etc/passwd", "short", "a/b\\c..d-ef", "x" * 12)
    videos = (*listed(2), *(yl.ListedVideo(video_id, "Odd", 100) for video_id in odd))
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", videos))

    found = list_videos(PLAYLIST_URL, session())

    assert [video.video_id for video in found] == ["vid00000000", "vid00000001"]
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == len(odd) and all("not a YouTube video id" in line for line in warnings)
    assert "'../../etc/passwd'" in warnings[0] and PLAYLIST_URL in warnings[0]


def test_limit_reads_only_the_pages_it_needs(site: FakeSite) -> None:
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", listed(250)))

    result = list_videos(PLAYLIST_URL, session(), limit=120)

    assert [v.video_id for v in result] == [f"vid{n:08d}" for n in range(120)]
    assert site.requests == [PLAYLIST_URL, "browse", "browse"]  # with hidden videos, then one more page


@pytest.mark.parametrize("lockups", [False, True], ids=["videoRenderer", "lockupViewModel"])
def test_a_channel_lists_its_videos_tab(site: FakeSite, lockups: bool) -> None:
    videos = listed(130)
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", videos, is_channel=True, lockups=lockups))

    result = list_videos(CHANNEL_URL, session())

    assert [v.video_id for v in result] == [v.video_id for v in videos]
    assert result[-1].title == "Lecture 129"
    assert result[-1].duration == videos[-1].duration


def test_since_keeps_recent_videos_and_those_without_a_date(site: FakeSite) -> None:
    old, new = listed(3, published="6 years ago"), listed(5, published="2 days ago")[3:]
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Lectures", (*new, *old), is_channel=True))

    since = datetime.date.today() - datetime.timedelta(days=365)
    result = list_videos(CHANNEL_URL, session(), since=since)

    assert [v.video_id for v in result] == [v.video_id for v in new]
    assert all(v.upload_date and v.upload_date >= since.isoformat() for v in result)


def test_a_playlist_that_is_gone_is_one_clear_error(site: FakeSite) -> None:
    site.pages[PLAYLIST_URL] = yl.gone_page()

    with pytest.raises(ExpansionError, match=r"playlist or channel is gone or private .*does not exist"):
        list_videos(PLAYLIST_URL, session())


def test_a_channel_without_videos_is_one_clear_error(site: FakeSite) -> None:
    site.add(CHANNEL_URL, yl.FakeList(CHANNEL_ID, "Empty", (), is_channel=True))

    with pytest.raises(ExpansionError, match=r"/@lectures/videos: has no videos$"):
        list_videos(CHANNEL_URL, session())


def test_since_that_leaves_nothing_says_so(site: FakeSite) -> None:
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", listed(3, published="6 years ago")))

    with pytest.raises(ExpansionError, match="has no videos uploaded since 2099-01-01"):
        list_videos(PLAYLIST_URL, session(), since=datetime.date(2099, 1, 1))


@pytest.mark.parametrize(
    ("status", "error"), [(403, BlockedError), (429, BlockedError), (503, TransientError)]
)
def test_blocks_and_server_errors_are_retryable_errors(site: FakeSite, status: int, error: type) -> None:
    site.add(PLAYLIST_URL, yl.FakeList(PLAYLIST_ID, "Course", listed(3)))
    site.status = [status] * 5

    with pytest.raises(error):
        list_videos(PLAYLIST_URL, session())


def test_order_puts_known_durations_first_in_either_direction() -> None:
    ids = ["a", "b", "c", "d"]
    durations = {"a": 300.0, "b": None, "c": 60.0, "d": 900.0}
    assert order_videos(ids, durations, "playlist") == ids
    assert order_videos(ids, durations, "shortest") == ["c", "a", "d", "b"]
    assert order_videos(ids, durations, "longest") == ["d", "a", "c", "b"]
    with pytest.raises(InputError, match="--order 'random': expected one of playlist, shortest, longest"):
        order_videos(ids, durations, "random")


@pytest.mark.network
def test_playlists_and_channels_expand_through_tor_shortest_first(
    tor_network: Any, fake_youtube: Any, tmp_path: Path
) -> None:
    from tests.bed.youtube_site import load_catalogue
    from tests.test_e2e_tor import archive, study_buddy

    catalogue = load_catalogue()
    course = json.loads((Path(__file__).parents[1] / "bed" / "catalogue.json").read_text())["playlists"][0]
    channel = [vid for vid, entry in catalogue.items() if entry.video.channel == "Networking Explained"]
    gone = "https://www.youtube.com/playlist?list=PLstudybuddyGone00000000000000001"
    result = study_buddy(
        tor_network,
        fake_youtube,
        tmp_path,
        "--order",
        "shortest",
        "--limit",
        "6",
        f"https://www.youtube.com/playlist?list={course['id']}",
        "https://www.youtube.com/@networkingexplained",
        gone,
        "https://www.youtube.com/@emptychannel/videos",
    )

    assert result.returncode == 1, result.stdout + result.stderr  # two lists could not be listed
    assert "argument 3: playlist or channel is gone or private" in result.stdout
    assert "argument 4: has no videos" in result.stdout
    expected = list(dict.fromkeys([*course["videos"][:6], *channel[:6]]))
    rows = archive(tmp_path)
    assert sorted(row["video_id"] for row in rows) == sorted(expected)
    assert {row["status"] for row in rows} == {"done"}
    done_order = [row["video_id"] for row in sorted(rows, key=lambda row: str(row["started_at"]))]
    assert done_order == sorted(expected, key=lambda vid: catalogue[vid].video.length_seconds)
    stats = fake_youtube.stats()
    listed_through_exits = sum(exit_stats["requests"]["list"] for exit_stats in stats["exits"].values())
    assert listed_through_exits == 5  # a page per list, the course's hidden videos: all through Tor
    assert {entry["local"] for entry in stats["connections"]} <= {info.address for info in tor_network.exits}


@pytest.mark.network
def test_private_and_deleted_videos_of_a_playlist_are_named_in_the_report_json_and_archive(
    tor_network: Any, fake_youtube: Any, tmp_path: Path
) -> None:
    from tests.test_e2e_tor import archive, study_buddy

    playlist = "https://www.youtube.com/playlist?list=PLstudybuddyHoles0000000000000001"
    gone = {"PrivateVid1": "private video", "DeletedVid1": "deleted video"}
    result = study_buddy(tor_network, fake_youtube, tmp_path, playlist)

    assert result.returncode == 1, result.stdout + result.stderr  # the course has holes
    assert "5 videos" in result.stdout and "2 failed (permanent 2)" in result.stdout
    for video_id, reason in gone.items():
        assert f"  failed  {video_id}: {reason}" in result.stdout
    rows = {row["video_id"]: (row["status"], row["error_kind"], row["error"]) for row in archive(tmp_path)}
    assert {vid: rows.pop(vid) for vid in gone} == {
        vid: ("failed", "permanent", why) for vid, why in gone.items()
    }
    assert set(rows.values()) == {("done", None, None)} and len(rows) == 3
    asked = {video_id for _t, _exit, _kind, video_id, _outcome in fake_youtube.stats()["timeline"]}
    assert not asked & set(gone)  # nothing is fetched for a video the playlist lists as private or deleted

    as_json = study_buddy(
        tor_network, fake_youtube, tmp_path, "--json", "--output", str(tmp_path / "j"), playlist
    )
    outcomes = json.loads(as_json.stdout)["outcomes"]
    failed = {o["video_id"]: (o["kind"], o["reason"]) for o in outcomes if o["stage"] == "failed"}
    assert failed == {vid: ("permanent", reason) for vid, reason in gone.items()}
