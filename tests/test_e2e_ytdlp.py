"""End to end, through the private Tor network: a run where every manual caption track needs a PO token
finishes through yt-dlp's subtitle path, with `--pot-provider` pointing at the fake bgutil provider that the
real plugin asks, and every exit's budget kept."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.bed.tornet import TorNetwork
from tests.bed.youtube_server import FakeYouTube
from tests.bed.youtube_site import SiteOptions
from tests.fakes.pot_provider import FakePotProvider
from tests.test_e2e_tor import CATALOGUE, NORMAL, archive, study_buddy

pytestmark = pytest.mark.network
MANUAL = [vid for vid in NORMAL if not CATALOGUE[vid].video.tracks[0].generated]
GENERATED = [vid for vid in NORMAL if CATALOGUE[vid].video.tracks[0].generated]
MAX_REQUESTS_PER_VIDEO = 5


def assert_video_budget_kept(
    stats: dict[str, Any], *, budget: int, window_s: float, slack_s: float = 0.5
) -> None:
    """No exit served more distinct videos in any sliding window than the budget (server clock). A video's
    requests on one exit count once: the yt-dlp path asks for the watch page again in the same slot."""
    first_seen: dict[tuple[str, str], float] = {}
    for t, exit_, kind, vid, outcome in stats["timeline"]:
        if kind == "watch" and outcome == "ok" and vid is not None:
            first_seen.setdefault((exit_, vid), t)
    for (exit_, _vid), t in first_seen.items():
        in_window = [
            u for (e, _v), u in first_seen.items() if e == exit_ and t - (window_s - slack_s) < u <= t
        ]
        assert len(in_window) <= budget, (exit_, t, in_window)


def test_every_manual_track_needs_a_po_token_and_the_run_finishes_through_ytdlp(
    tor_network: TorNetwork, fake_youtube: FakeYouTube, fake_pot_provider: FakePotProvider, tmp_path: Path
) -> None:
    fake_youtube.configure(site=SiteOptions(manual_po_tokens=True))
    manual, generated = MANUAL[:9], GENERATED[:3]
    budget, window = 4, 60.0
    result = study_buddy(
        tor_network,
        fake_youtube,
        tmp_path,
        "--parallel",
        "--workers",
        "3",
        "--per-exit",
        f"{budget}/{window:g}s",
        "--pot-provider",
        fake_pot_provider.url,
        "--notes",  # offline notes (no key): they save each transcript as JSON
        "--json",
        "--",
        *manual,
        *generated,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["done"] == len(manual) + len(generated)
    rows = {row["video_id"]: row for row in archive(tmp_path)}
    assert {vid for vid, row in rows.items() if row["status"] == "done"} == {*manual, *generated}
    # one subtitles token per manual video, bound to it, asked for through the worker's own Tor circuit
    assert sorted(fake_pot_provider.bindings()) == sorted(manual)
    assert all(request.with_proxy for request in fake_pot_provider.requests)
    stats = fake_youtube.stats()
    per_video = Counter(vid for _t, _exit, _kind, vid, _outcome in stats["timeline"] if vid is not None)
    assert {per_video[vid] for vid in manual} == {4}  # library: watch + player; yt-dlp: watch + captions
    assert {per_video[vid] for vid in generated} == {3}  # automatic tracks need no token
    assert max(per_video.values()) <= MAX_REQUESTS_PER_VIDEO
    kinds = Counter((vid, kind) for _t, _exit, kind, vid, _outcome in stats["timeline"] if vid in manual)
    assert all(kinds[(vid, "captions")] == 1 for vid in manual)  # the token worked the first time
    assert_video_budget_kept(stats, budget=budget, window_s=window)
    for vid in manual:  # the transcript the note was written from is the caption track, via json3
        saved = json.loads((tmp_path / "notes" / ".transcripts" / f"{vid}.json").read_text())
        assert len(saved["transcript"]["segments"]) == len(CATALOGUE[vid].video.segments)
