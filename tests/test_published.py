"""utils.published: the chapter's generators fetched safely, from a web server on 127.0.0.1.

Nothing here uses the internet: a `http.server` in a thread serves a good `hair.zip` (with a
top-level folder and `__MACOSX` entries, as a Mac makes it), a web page with status 200, a
truncated zip, a zip climbing out with `../`, generators of the wrong size, a pickle that would
run code, a zip bomb, a dead link, ... Each failure must say what happened and what to do by
hand, and leave the reader's folder byte for byte as it was, even with `force=True`.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import shlex
import shutil
import socket
import threading
import time
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch

from tests.conftest import lock_held_elsewhere
from utils import published as pub
from utils.ch06util import Generator
from utils.checkpoints import CheckpointError
from utils.locks import FolderBusyError, lock_path
from utils.ownership import RECORD as OWNED
from utils.ownership import OwnedFiles

HTML = b"<!DOCTYPE html>\n<html><head><title>Moved</title></head><body>This page has moved.</body></html>"


class _Exploit:
    """Unpickling this calls os.mkdir(marker): the test checks the folder never appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _zip(path: Path, members: dict[str, bytes | Path], method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            if isinstance(data, Path):
                archive.write(data, name)
            else:
                archive.writestr(name, data)
    return path


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files from the site folder, plus canned answers (status, content type, body, declared length)."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path == "/stall.zip":  # a server that stops sending half way
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"PK\x03\x04")
            self.wfile.flush()
            time.sleep(1.0)
            self.close_connection = True
            return
        canned = self.server.routes.get(self.path)
        if canned is None:
            return super().do_GET()
        status, content_type, body, declared = canned
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The files and the server: built once (two full-size generators, ~91 MB, one good zip)."""
    root = tmp_path_factory.mktemp("site")
    with torch.device("meta"):
        shapes = Generator(3, 64, 9).state_dict()
    gen = torch.Generator().manual_seed(0)
    black = {k: torch.randn(v.shape, generator=gen) * 0.02 for k, v in shapes.items()}
    blond = {**black, "last.bias": black["last.bias"] + 1.0}  # a different file, same shapes
    (root / "gens").mkdir()
    torch.save(black, root / "gens" / "gen_black.pth")
    torch.save(blond, root / "gens" / "gen_blond.pth")
    _zip(root / "hair.zip", {"hair/gen_black.pth": root / "gens" / "gen_black.pth",
                             "hair/gen_blond.pth": root / "gens" / "gen_blond.pth",
                             "hair/readme.txt": b"CycleGAN generators, chapter 6",
                             "__MACOSX/hair/._gen_black.pth": b"\x00\x05\x16\x07 AppleDouble",
                             "__MACOSX/hair/._gen_blond.pth": b"\x00\x05\x16\x07 AppleDouble"})
    small = _saved(Generator(3, 8, 1).state_dict())
    marker = root / "the_pickle_ran"
    _zip(root / "shapes.zip", {"gen_black.pth": small, "gen_blond.pth": small})
    _zip(root / "evil.zip", {"gen_black.pth": _saved({"x": _Exploit(marker)}), "gen_blond.pth": small})
    _zip(root / "escape.zip", {"../gen_black.pth": small, "gen_blond.pth": small})
    _zip(root / "nothing.zip", {"hair/notes.txt": b"no weights here"})
    _zip(root / "twice.zip", {"a/gen_black.pth": small, "b/gen_black.pth": small, "gen_blond.pth": small})
    _zip(root / "double.zip", {"hair.zip": (root / "nothing.zip").read_bytes()})  # a zip zipped again
    with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("hair/gen_black.pth", "w", force_zip64=True) as member:
            for _ in range(pub.MAX_MEMBER_BYTES // (1 << 20) + 10):  # 210 MB of zeros: ~0.2 MB zipped
                member.write(bytes(1 << 20))
        archive.writestr("hair/gen_blond.pth", small)
    good = (root / "hair.zip").read_bytes()
    (root / "truncated.zip").write_bytes(good[: len(good) * 3 // 5])
    (root / "half").mkdir()
    os.link(root / "gens" / "gen_black.pth", root / "half" / "gen_black.pth")  # no gen_blond.pth
    routes = {
        "/page.zip": (200, "text/html", HTML, None),
        "/sneaky.zip": (200, "application/zip", HTML, None),  # says zip, is a web page
        "/cut.zip": (200, "application/zip", good[:100_000], len(good)),  # connection drops
        "/huge.zip": (200, "application/zip", b"PK", 50 * 10**9),
        "/htmlfolder/gen_black.pth": (200, "text/html", HTML, None),
        "/htmlfolder/gen_blond.pth": (200, "text/html", HTML, None),
    }
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.routes, server.requests = routes, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"root": root, "url": url, "server": server, "marker": marker,
           "black": (root / "gens" / "gen_black.pth").read_bytes(),
           "blond": (root / "gens" / "gen_blond.pth").read_bytes()}
    server.shutdown()
    server.server_close()
    shutil.rmtree(root, ignore_errors=True)  # ~240 MB: not kept with pytest's last runs


@pytest.fixture(autouse=True)
def _drop_big_files(tmp_path):
    """Each placed pair is ~91 MB: remove them after the test (pytest keeps its last temp folders)."""
    yield
    for path in tmp_path.rglob("*.pth"):
        path.unlink()


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder`, hidden ones included, with the bytes of each file."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def own(tmp_path):
    """A reader's files/ with their own trained pair and a note: what must survive every failure."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "gen_black.pth").write_bytes(b"my own gen_black, trained for a day")
    (files / "gen_blond.pth").write_bytes(b"my own gen_blond, trained for a day")
    (files / "notes.txt").write_text("do not touch")
    return files


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(pub.WEIGHTS_URL_ENV, raising=False)


def _assert_published(folder: Path, site) -> None:
    assert (folder / "gen_black.pth").read_bytes() == site["black"]
    assert (folder / "gen_blond.pth").read_bytes() == site["blond"]
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == [OWNED]  # no temporary left; the record of what the fetch placed
    assert OwnedFiles.load(folder).owner("gen_black.pth") == pub.OWNER
    assert pub.published_in_place(folder)


@pytest.mark.parametrize("how", ["http zip", "http folder", "file:// zip", "plain zip path",
                                 "plain folder path", "environment variable"])
def test_every_kind_of_address_places_both_generators(how, site, tmp_path, monkeypatch):
    root, url = site["root"], site["url"]
    source = {"http zip": f"{url}/hair.zip", "http folder": f"{url}/gens/",
              "file:// zip": (root / "hair.zip").as_uri(), "plain zip path": str(root / "hair.zip"),
              "plain folder path": str(root / "gens"), "environment variable": None}[how]
    if source is None:
        monkeypatch.setenv(pub.WEIGHTS_URL_ENV, f"{url}/hair.zip")
    dest = tmp_path / "files"
    placed = pub.fetch_published_generators(source, dest, progress=False)
    assert placed == [dest / "gen_black.pth", dest / "gen_blond.pth"]
    _assert_published(dest, site)
    assert sorted(p.name for p in dest.iterdir()) == [OWNED, "gen_black.pth", "gen_blond.pth", pub.RECORD]


def test_the_placed_files_load_strictly_into_the_chapters_generator(site, tmp_path):
    pub.fetch_published_generators(str(site["root"] / "hair.zip"), tmp_path, progress=False)
    state = torch.load(tmp_path / "gen_blond.pth", weights_only=True)
    with torch.device("meta"):
        Generator(3).load_state_dict(state, strict=True, assign=True)
    assert torch.equal(state["last.bias"], torch.load(site["root"] / "gens" / "gen_blond.pth",
                                                      weights_only=True)["last.bias"])


def _killed_fetch_and_a_readers_backup(folder: Path) -> tuple[Path, Path]:
    """What a fetch killed mid-download leaves (its staging folder, with its mark inside) and a
    reader's own folder whose name starts the same way (no mark): both over an hour old."""
    killed, backup = folder / f"{pub.STAGING_PREFIX}k1l2d", folder / f"{pub.STAGING_PREFIX}backup"
    for made in (killed, backup):
        made.mkdir(parents=True)
        (made / "gen_black.pth").write_bytes(b"half a download" if made == killed else b"my backup")
        hours_ago = time.time() - 7200
        os.utime(made, (hours_ago, hours_ago))
    (killed / pub.STAGING_MARK).write_text("")
    return killed, backup


def test_a_successful_fetch_removes_what_a_killed_fetch_left_and_nothing_of_the_readers(site, tmp_path,
                                                                                          capsys):
    killed, backup = _killed_fetch_and_a_readers_backup(tmp_path)
    pub.fetch_published_generators(str(site["root"] / "hair.zip"), tmp_path, progress=False)
    assert not killed.exists() and (backup / "gen_black.pth").read_bytes() == b"my backup"
    assert "Removed 1 unfinished download folder(s)" in capsys.readouterr().out


def test_a_failed_fetch_that_says_nothing_changed_changed_nothing(site, own):
    _killed_fetch_and_a_readers_backup(own)
    before = _snapshot(own)
    with pytest.raises(pub.FetchError, match="Nothing in .* was changed"):
        pub.fetch_published_generators(f"{site['url']}/page.zip", own, force=True, progress=False)
    assert _snapshot(own) == before


def test_a_fetch_into_a_folder_another_process_writes_is_refused(site, tmp_path):
    with lock_held_elsewhere(tmp_path) as holder:
        with pytest.raises(FolderBusyError, match=rf"in use by process {holder.pid} "):
            pub.fetch_published_generators(str(site["root"] / "hair.zip"), tmp_path, progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == [lock_path(tmp_path, "output").name]


def test_a_second_run_downloads_nothing(site, tmp_path, capsys):
    pub.fetch_published_generators(f"{site['url']}/hair.zip", tmp_path, progress=False)
    count = len(site["server"].requests)
    pub.fetch_published_generators(f"{site['url']}/hair.zip", tmp_path, progress=False)
    assert len(site["server"].requests) == count
    assert "already in" in capsys.readouterr().out


def test_the_readers_own_generators_are_kept_without_force(site, own):
    before, count = _snapshot(own), len(site["server"].requests)
    with pytest.raises(pub.FetchError) as err:
        pub.fetch_published_generators(f"{site['url']}/hair.zip", own, progress=False)
    message = str(err.value)
    assert "already exist" in message and "--force" in message and "nothing was downloaded" in message
    assert _snapshot(own) == before and len(site["server"].requests) == count


def test_force_replaces_both_and_keeps_everything_else(site, own):
    pub.fetch_published_generators(f"{site['url']}/hair.zip", own, force=True, progress=False)
    _assert_published(own, site)
    assert (own / "notes.txt").read_text() == "do not touch"


def test_a_generator_trained_over_the_published_pair_is_no_longer_taken_for_it(site, tmp_path):
    pub.fetch_published_generators(str(site["root"] / "gens"), tmp_path, progress=False)
    (tmp_path / "gen_blond.pth").write_bytes(b"a new training run")
    assert not pub.published_in_place(tmp_path)


FAILURES = {  # address (under the server) -> what the message must say
    "/page.zip": r"/(page|sneaky)\.zip is a web page \(HTML, 95 bytes\), not a zip",
    "/sneaky.zip": r"/(page|sneaky)\.zip is a web page \(HTML, 95 bytes\), not a zip",
    "/truncated.zip": r"not a complete zip file",
    "/cut.zip": r"was cut short",
    "/escape.zip": r"is refused: refusing '\.\./gen_black\.pth'",
    "/shapes.zip": r"does not fit Generator: missing keys .*wrong shapes",
    "/evil.zip": r"gen_black\.pth from .*could run code, so it was not loaded",
    "/missing.zip": r"HTTP 404 .*the link is dead or has moved",
    "/bomb.zip": r"far larger than a generator .*zip bomb",
    "/huge.zip": r"announces 50000 MB",
    "/nothing.zip": r"holds no gen_black\.pth \(it holds hair/notes\.txt\): not the chapter's",
    "/twice.zip": r"holds 2 files named gen_black\.pth \(a/gen_black\.pth, b/gen_black\.pth\): which one",
    "/double.zip": r"holds another zip \(hair\.zip\) instead of gen_black\.pth: it was zipped twice",
    "/htmlfolder/": r"gen_black\.pth from .*web page \(HTML\)",
    "/half/": r"gen_blond\.pth answered HTTP 404",  # the first file was fine: still nothing placed
}


@pytest.mark.parametrize("path", list(FAILURES))
def test_a_bad_answer_says_what_and_how_and_changes_nothing(path, site, own):
    before = _snapshot(own)
    source = site["url"] + path
    with pytest.raises(pub.FetchError) as err:
        pub.fetch_published_generators(source, own, force=True, progress=False)
    message = str(err.value)
    assert re.search(FAILURES[path], message), message
    assert site["url"] in message  # the address it tried
    assert f"Nothing in {own} was changed" in message
    assert "By hand: download" in message and "gen_black.pth and gen_blond.pth in" in message
    assert "--url path/to/hair.zip" in message
    assert "weights_only=False" not in message and ".published-" not in message  # no temporary file
    assert "FetchError" not in message  # what is wrong, not "damaged or unreadable (FetchError: ...)"
    assert _snapshot(own) == before
    assert not site["marker"].exists()  # the pickle's code never ran


def test_offline_names_the_host_and_the_manual_steps(own):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = _snapshot(own)
    with pytest.raises(pub.FetchError, match=rf"could not reach 127\.0\.0\.1:{port} .*offline"):
        pub.fetch_published_generators(f"http://127.0.0.1:{port}/hair.zip", own, force=True, progress=False)
    assert _snapshot(own) == before


def test_the_manual_steps_command_keeps_a_folder_with_a_space_in_one_argument(tmp_path):
    dest = tmp_path / "My Course" / "files"
    steps = pub.manual_steps(pub.PUBLISHED_WEIGHTS_URL, dest)
    assert shlex.split(steps.split("`")[1])[-2:] == ["--dest", str(dest)]


def test_a_stalled_download_times_out_and_changes_nothing(site, own):
    before = _snapshot(own)
    with pytest.raises(pub.FetchError, match=r"stall\.zip was cut short after 0\.0 MB \(no data for 0\.2 s"):
        pub.fetch_published_generators(f"{site['url']}/stall.zip", own, force=True, timeout=0.2,
                                       progress=False)
    assert _snapshot(own) == before


def test_the_default_address_is_the_chapters_with_a_clear_user_agent(tmp_path, monkeypatch):
    asked = []

    def offline(request, timeout):
        asked.append((request.full_url, request.get_header("User-agent"), timeout))
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(pub.urllib.request, "urlopen", offline)
    with pytest.raises(pub.FetchError) as err:
        pub.fetch_published_generators(None, tmp_path / "files", progress=False)
    assert asked == [(pub.PUBLISHED_WEIGHTS_URL, pub.USER_AGENT, 60.0)]
    assert pub.PUBLISHED_WEIGHTS_URL == "https://gattonweb.uky.edu/faculty/lium/ml/hair.zip"
    assert f"By hand: download {pub.PUBLISHED_WEIGHTS_URL}" in str(err.value)
    assert not (tmp_path / "files").exists()  # the folder it made for the download is gone again


def test_a_local_path_that_does_not_exist(own):
    with pytest.raises(pub.FetchError, match=r"not found: .*hair\.zip"):
        pub.fetch_published_generators(str(own.parent / "Downloads" / "hair.zip"), own, force=True)


def test_a_local_zip_that_is_a_saved_web_page(own, tmp_path):
    page = tmp_path / "hair.zip"
    page.write_bytes(HTML)
    before = _snapshot(own)
    with pytest.raises(pub.FetchError, match=r"web page \(HTML"):
        pub.fetch_published_generators(str(page), own, force=True)
    assert _snapshot(own) == before


def test_an_address_of_another_kind(own):
    with pytest.raises(pub.FetchError, match=r"only http\(s\):// and file:// .*Nothing in .*By hand"):
        pub.fetch_published_generators("ftp://example.org/hair.zip", own, force=True)


def test_reading_is_capped_whatever_a_header_says(tmp_path):
    with pytest.raises(pub.FetchError, match="larger than 1 MB"):
        pub._copy_capped(io.BytesIO(bytes(2 << 20)), tmp_path / "out", 1_000_000, "member")


def test_if_the_second_rename_fails_the_first_is_put_back(site, own, monkeypatch):
    before = _snapshot(own)
    real_replace, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if str(dst).endswith("gen_blond.pth"):
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(pub.os, "replace", flaky)
    with pytest.raises(OSError):
        pub.fetch_published_generators(str(site["root"] / "gens"), own, force=True, progress=False)
    monkeypatch.setattr(pub.os, "replace", real_replace)
    assert _snapshot(own) == before


def test_fetch_error_is_a_checkpoint_error_for_the_notebook():
    assert issubclass(pub.FetchError, CheckpointError)


def test_the_command_line(site, own, capsys):
    assert pub.main(["fetch", "--url", f"{site['url']}/page.zip", "--dest", str(own), "--force"]) == 2
    err = capsys.readouterr().err.split("\r")[-1]  # after the progress bar, which clears itself
    assert err.startswith("error: ") and err.count("\n") == 1 and "web page" in err
    assert pub.main(["fetch", "--url", f"{site['url']}/hair.zip", "--dest", str(own)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert pub.main(["fetch", "--url", str(site["root"] / "hair.zip"), "--dest", str(own), "--force"]) == 0
    assert "in place" in capsys.readouterr().out
    _assert_published(own, site)
    assert pub.main(["fetch", "--timeout", "0", "--dest", str(own)]) == 2


def test_make_weights_runs_the_command_and_python_m_reports_in_one_line(tmp_path):
    import subprocess
    import sys

    from utils.paths import REPO_ROOT

    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "weights: setup\n\t$(PY) -m utils.published fetch $(ARGS)" in makefile
    run = subprocess.run([sys.executable, "-m", "utils.published", "fetch", "--url",
                          str(tmp_path / "hair.zip"), "--dest", str(tmp_path / "files")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: not found:")
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "files").exists()
