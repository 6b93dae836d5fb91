"""The documentation site: built strictly, served on 127.0.0.1, every page opened in Chromium.

A release check, not part of the library's suite (it needs MkDocs and Debian's `chromium`):

    KERAS_KD_RELEASE_CHECKS=1 python -m pytest -q tests/test_docs_site.py

`mkdocs build --strict` fails on a broken link, a missing page or a public symbol of the API
reference without a docstring (docs/hooks/check_docstrings.py). Then each page is served from
the built site and loaded by headless Chromium, which writes a screenshot (kept in
$KERAS_KD_SCREENSHOTS when set, for a person to look at) and the DOM after the page's scripts
ran. A page fails when it does not render (no article with its title, a blank screenshot), when
any file it asks the server for is missing, or when an image it shows is not a real image.
"""

import functools
import http.server
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_KD_RELEASE_CHECKS") != "1", reason="release check: set KERAS_KD_RELEASE_CHECKS=1"
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 1600


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        self.server.requests.append((urllib.parse.urlsplit(self.path).path, int(args[1]) if len(args) > 1 else 0))


class _Server(http.server.ThreadingHTTPServer):
    requests: list


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def serve(folder):
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(site):
    running = serve(site)
    yield running
    running.shutdown()


def pages(folder):
    """URL paths of the site's pages (each folder's index.html), 404.html left out."""
    relative = (p.parent.relative_to(folder).as_posix() for p in folder.rglob("index.html"))
    return sorted("/" if rel == "." else f"/{rel}/" for rel in relative)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.h1, self.in_h1, self.articles = [], [], False, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        elif tag == "article":
            self.articles += 1
        elif tag == "h1":
            self.in_h1 = True

    def handle_endtag(self, tag):
        if tag == "h1":
            self.in_h1 = False

    def handle_data(self, data):
        if self.in_h1:
            self.h1.append(data)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def blank(png_path):
    """Whether a screenshot is one flat colour (nothing drawn)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png_path)
    return float(pixels[..., :3].std()) < 0.01


def _screenshot(url, shot, tries=2):
    """Chromium's screenshot and DOM of `url`: each try in a profile of its own (a browser left over
    from an earlier page holds the default profile's lock, and a new one can then wait on it for
    ever), and a browser that hangs is killed and tried once more. A page that fails twice fails."""
    for attempt in range(tries):
        with tempfile.TemporaryDirectory() as profile:
            command = [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                f"--screenshot={shot}",
                "--dump-dom",
                url,
            ]
            try:
                return subprocess.run(command, capture_output=True, text=True, timeout=90)
            except subprocess.TimeoutExpired:
                if attempt == tries - 1:
                    raise


def check_page(server, path, shots):
    """Problems with one page as Chromium shows it; an empty list when it renders whole."""
    base = f"http://127.0.0.1:{server.server_address[1]}"
    shot = shots / (path.strip("/").replace("/", "_") or "index")
    shot = shot.with_suffix(".png")
    first = len(server.requests)
    result = _screenshot(base + path, shot)
    problems = []
    if result.returncode != 0 or not shot.exists():
        return [f"{path}: Chromium failed ({result.returncode}): {result.stderr[-500:]}"]
    if png_size(shot.read_bytes()) != (WIDTH, HEIGHT) or blank(shot):
        problems.append(f"{path}: the screenshot is blank")
    dom = _Collect()
    dom.feed(result.stdout)
    if dom.articles != 1 or not "".join(dom.h1).strip():
        problems.append(f"{path}: no article with a title in the rendered page")
    missing = [(p, s) for p, s in server.requests[first:] if s >= 400 and not p.endswith("favicon.ico")]
    problems += [f"{path}: the page asked for {p}, which answered {s}" for p, s in missing]
    for src in dom.images:
        url = urllib.parse.urljoin(base + path, src)
        try:
            data = urllib.request.urlopen(url, timeout=30).read()
        except OSError as error:
            problems.append(f"{path}: image {src} does not load ({error})")
            continue
        if not (
            data.startswith(b"\x89PNG") or data.lstrip().startswith((b"<svg", b"<?xml")) or data[:3] == b"\xff\xd8\xff"
        ):
            problems.append(f"{path}: image {src} is not an image")
    return problems


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("KERAS_KD_SCREENSHOTS")
    if folder:
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        return pathlib.Path(folder)
    return tmp_path_factory.mktemp("screenshots")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_every_page_renders_with_its_images(site, server, shots):
    listed = pages(site)
    # The home page, the guides, the API reference and the benchmarks are all there.
    for expected in ("/", "/concepts/", "/getting_started/", "/api/distiller/", "/benchmarks/"):
        assert expected in listed
    problems = [problem for path in listed for problem in check_page(server, path, shots)]
    assert problems == []
    assert len(list(shots.glob("*.png"))) >= len(listed)


def test_the_concepts_figure_is_the_script_s(site, tmp_path):
    """docs/images/temperature_softening.png is what docs/figures/temperature_softening.py draws."""
    import matplotlib.image

    drawn = tmp_path / "drawn.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "figures" / "temperature_softening.py"), str(drawn)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    built = site / "images" / "temperature_softening.png"
    assert png_size(built.read_bytes()) == png_size(drawn.read_bytes())
    difference = abs(matplotlib.image.imread(built) - matplotlib.image.imread(drawn)).mean()
    assert difference < 0.01, f"the committed figure differs from the script's: rerun {result.args[1]}"
    assert 'src="../images/temperature_softening.png"' in (site / "concepts" / "index.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_check_fails_on_a_missing_image(site, tmp_path):
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    (broken / "images" / "temperature_softening.png").unlink()
    running = serve(broken)
    try:
        problems = check_page(running, "/concepts/", tmp_path)
    finally:
        running.shutdown()
    assert any("temperature_softening.png" in problem for problem in problems), problems


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_check_fails_on_a_page_that_does_not_render(site, tmp_path):
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    (broken / "concepts" / "index.html").write_text("<html><body></body></html>")
    running = serve(broken)
    try:
        problems = check_page(running, "/concepts/", tmp_path)
    finally:
        running.shutdown()
    assert any("blank" in problem for problem in problems) and any("article" in p for p in problems), problems
