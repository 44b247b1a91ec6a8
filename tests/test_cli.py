"""The ``waakhond`` command.

Fast tests call ``main()`` in-process on paths that load no models. The end-to-end group runs
the real command in a subprocess with the real models (marked ``models``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import images
from waakhond import cli
from waakhond.cli import EXIT_OK, EXIT_UNREADABLE, Outcome

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FACE_PHOTO = SHARED_DATA / "faces" / "deepface" / "img1.jpg"  # one adult's face, harmless

VERDICT_KEYS = {
    "action", "labels", "reasons", "dsa", "policy_version", "jurisdiction", "context",
    "country", "signals", "timings_ms", "image",
}


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if the command gets as far as loading the models."""

    def refuse(job):
        raise AssertionError("the command loaded the models")

    monkeypatch.setattr(cli, "_init_worker", refuse)


@pytest.fixture
def fake_screener(monkeypatch):
    """Replace the models by a screener that allows every file and records what it saw."""
    screened: list[Path] = []

    def screen(target):
        path, from_folder = target
        screened.append(path)
        verdict = {"action": "allow", "source": str(path)}
        return Outcome(str(path), verdict=verdict, text=f"{path}: ALLOW", from_folder=from_folder)

    monkeypatch.setattr(cli, "_init_worker", lambda job: None)
    monkeypatch.setattr(cli, "_screen_one", screen)
    return screened


# ---------------------------------------------------------------------------------------
# Fast paths: no models
# ---------------------------------------------------------------------------------------


def test_no_arguments_prints_help_and_succeeds(capsys):
    assert cli.main([]) == EXIT_OK

    out = capsys.readouterr().out
    assert "usage: waakhond" in out
    assert "check" in out
    assert "policy" in out


def test_policy_for_a_country_shows_its_layers(capsys):
    assert cli.main(["policy", "--country", "NL"]) == EXIT_OK

    assert "base > EU > NL" in capsys.readouterr().out


def test_policy_for_a_country_lists_rules_with_their_actions(capsys):
    cli.main(["policy", "--country", "NL"])

    out = capsys.readouterr().out
    assert "[system.detector_failure] -> block" in out
    assert "law: " in out


def test_policy_country_code_is_case_insensitive(capsys):
    assert cli.main(["policy", "--country", "nl"]) == EXIT_OK

    assert "base > EU > NL" in capsys.readouterr().out


def test_policy_without_country_shows_the_base_policy(capsys):
    assert cli.main(["policy"]) == EXIT_OK

    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("policy ")
    assert first_line.endswith(": base")


def test_policy_for_an_unknown_country_fails_with_a_message(capsys):
    assert cli.main(["policy", "--country", "XX"]) == EXIT_UNREADABLE

    captured = capsys.readouterr()
    assert "unknown country 'XX'" in captured.err
    assert "ISO 3166-1 alpha-2" in captured.err
    assert captured.out == ""


def test_check_with_an_unknown_country_fails_before_loading_models(capsys, no_models, tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(images.jpeg())

    assert cli.main(["check", str(image), "--country", "XX"]) == EXIT_UNREADABLE

    assert "unknown country 'XX'" in capsys.readouterr().err


def test_check_on_an_empty_folder_fails_before_loading_models(capsys, no_models, tmp_path):
    assert cli.main(["check", str(tmp_path)]) == EXIT_UNREADABLE

    assert "no files to screen" in capsys.readouterr().err


def test_check_with_an_unknown_context_is_a_usage_error(capsys, no_models, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", str(tmp_path), "--context", "holiday"])

    assert exit_info.value.code == 2
    assert "invalid choice: 'holiday'" in capsys.readouterr().err


def test_check_skips_hidden_files_inside_a_folder(fake_screener, tmp_path):
    (tmp_path / "a.jpg").write_bytes(images.jpeg())
    (tmp_path / ".thumbs").mkdir()
    (tmp_path / ".thumbs" / "b.jpg").write_bytes(images.jpeg())
    (tmp_path / ".c.jpg").write_bytes(images.jpeg())

    assert cli.main(["check", str(tmp_path), "--workers", "1"]) == EXIT_OK

    assert fake_screener == [tmp_path / "a.jpg"]


def test_check_screens_a_folder_that_lies_under_a_hidden_folder(fake_screener, tmp_path):
    photos = tmp_path / ".cache" / "photos"
    photos.mkdir(parents=True)
    (photos / "a.jpg").write_bytes(images.jpeg())

    assert cli.main(["check", str(photos), "--workers", "1"]) == EXIT_OK

    assert fake_screener == [photos / "a.jpg"]


def test_check_screens_a_folder_given_relative_to_the_parent(
    fake_screener, tmp_path, monkeypatch
):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(images.jpeg())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    assert cli.main(["check", "../photos", "--workers", "1"]) == EXIT_OK

    assert fake_screener == [Path("../photos/a.jpg")]


# ---------------------------------------------------------------------------------------
# End to end: the real command with the real models, in a subprocess
# ---------------------------------------------------------------------------------------


def run_waakhond(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waakhond.cli", *map(str, arguments)],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_is_verdict(line: dict) -> None:
    assert line.keys() >= VERDICT_KEYS, f"missing: {VERDICT_KEYS - line.keys()}"


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """An empty folder to fill with synthetic photos (320 x 240, big enough for every
    detector)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


@pytest.mark.models
class TestCheckEndToEnd:
    def test_face_photo_is_allowed(self):
        result = run_waakhond("check", FACE_PHOTO)

        assert result.returncode == EXIT_OK, result.stderr
        assert f"{FACE_PHOTO}: ALLOW" in result.stdout

    def test_folder_in_json_reports_verdicts_and_errors_and_skips_non_images(self, photo_folder):
        (photo_folder / "beach.jpg").write_bytes(images.jpeg(320, 240, color=(40, 120, 220)))
        (photo_folder / "forest.jpg").write_bytes(images.jpeg(320, 240, color=(30, 180, 60)))
        (photo_folder / "README.txt").write_text("Holiday photos.\n")
        broken = images.encode(images.noise(320, 240), "JPEG")
        (photo_folder / "broken.jpg").write_bytes(images.truncated(broken, 0.5))

        result = run_waakhond("check", photo_folder, "--json", "--workers", "1")

        assert result.returncode == EXIT_UNREADABLE, result.stderr
        lines = json_lines(result.stdout)
        assert len(lines) == 3
        verdicts = [line for line in lines if "action" in line]
        errors = [line for line in lines if "error" in line]
        assert len(verdicts) == 2
        for verdict in verdicts:
            assert_is_verdict(verdict)
        assert [error["error"]["code"] for error in errors] == ["corrupt_image"]
        assert errors[0]["source"] == str(photo_folder / "broken.jpg")
        assert "README.txt" not in result.stdout

    def test_missing_file_fails_with_a_message(self, tmp_path):
        missing = tmp_path / "no-such-photo.jpg"

        result = run_waakhond("check", missing)

        assert result.returncode == EXIT_UNREADABLE
        assert str(missing) in result.stderr
        assert "No such file" in result.stderr

    def test_folder_with_two_workers_screens_every_image(self, photo_folder):
        colors = [(200, 60, 30), (40, 120, 220), (30, 180, 60)]
        for number, color in enumerate(colors):
            (photo_folder / f"photo{number}.jpg").write_bytes(images.jpeg(320, 240, color))

        result = run_waakhond("check", photo_folder, "--json", "--workers", "2")

        assert result.returncode == EXIT_OK, result.stderr
        lines = json_lines(result.stdout)
        assert len(lines) == 3
        for line in lines:
            assert_is_verdict(line)
            assert line["action"] == "allow"
            assert line["image"]["format"] == "JPEG"
        assert sorted(Path(line["source"]).name for line in lines) == [
            "photo0.jpg", "photo1.jpg", "photo2.jpg",
        ]
