"""Publishing: launch buttons from one setting (tools/publish.py) and the GitHub Pages job of the workflow.

The build test stages a copy of the book (this _config.yml and _toc.yml, the pages of _stage/book that
`make book` staged, the notebooks without their outputs, execution off), sets REPOSITORY_URL and
JUPYTERHUB_URL, builds it with `jupyter-book build -W -n` (under a minute on two cores) and checks that
every chapter page links to its own notebook on Binder, Colab and the hub, and that other pages have none.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
STAGE = ROOT / "_stage"
REPO = "https://github.com/example-org/optimization-dynamics"
HUB = "https://hub.example.org"


sys.path.insert(0, str(ROOT / "tools"))  # tools/ is a folder of scripts, as in test_structure.py
import course  # noqa: E402
import publish  # noqa: E402

CHAPTERS = [path.stem for _, paths in course.parts(ROOT / "book") for path in paths]
PAGES = yaml.safe_load((ROOT / "_toc.yml").read_text())


def launch_links(html: str) -> list[str]:
    hosts = ("mybinder.org", "colab.research.google.com", urlparse(HUB).hostname)
    return [unquote(u).replace("&amp;", "&") for u in re.findall(r'href="(https://[^"]+)"', html)
            if urlparse(unquote(u)).hostname in hosts]


def test_launch_buttons_are_off_unless_the_repository_is_set(tmp_path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    buttons = config["launch_buttons"]
    assert not any(buttons.get(k) for k in ("binderhub_url", "colab_url", "jupyterhub_url", "thebe"))
    assert not config.get("repository", {}).get("url")
    # the theme options are merged into Jupyter Book's, not replaced (which would drop the launch buttons)
    assert config["sphinx"].get("recursive_update") is True
    shutil.copyfile(ROOT / "_config.yml", tmp_path / "_config.yml")
    assert publish.write_launch(tmp_path, env={}) is None
    assert publish.write_launch(tmp_path, env={"REPOSITORY_URL": "  "}) is None
    assert (tmp_path / "_config.yml").read_text() == (ROOT / "_config.yml").read_text()


def test_the_setting_switches_every_launch_button_on(tmp_path):
    shutil.copyfile(ROOT / "_config.yml", tmp_path / "_config.yml")
    publish.write_launch(tmp_path, env={"REPOSITORY_URL": REPO + ".git/"})
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert config["repository"] == {"url": REPO, "path_to_book": "", "branch": "main"}
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]
    assert not config["launch_buttons"]["jupyterhub_url"]  # a hub needs its own address
    assert config["html"] == yaml.safe_load((ROOT / "_config.yml").read_text())["html"]  # the rest is kept
    for bad in ("https://gitlab.com/a/b", "github.com/a/b", "https://github.com/a"):
        with pytest.raises(SystemExit, match="GitHub repository"):
            publish.launch_settings(bad)
    with pytest.raises(SystemExit, match="https://"):
        publish.launch_settings(REPO, jupyterhub_url="hub.example.org")


@pytest.fixture(scope="module")
def launch_site(tmp_path_factory):
    """The book built with the launch buttons on (notebooks without outputs, no execution): its html folder."""
    import nbformat

    if not (STAGE / "book").is_dir():
        pytest.fail("run `make book` first: this test builds the pages it staged in _stage/book")
    work = tmp_path_factory.mktemp("launch")
    shutil.copytree(STAGE / "book", work / "book")
    shutil.copyfile(ROOT / "_toc.yml", work / "_toc.yml")
    config = (ROOT / "_config.yml").read_text()
    (work / "_config.yml").write_text(re.sub(r"(?m)^(  execute_notebooks:).*$", r'\1 "off"', config))
    for path in (work / "book").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, path)
    publish.write_launch(work, env={"REPOSITORY_URL": REPO, "JUPYTERHUB_URL": HUB})
    build = subprocess.run([str(pathlib.Path(sys.executable).parent / "jupyter-book"), "build", str(work),
                            "--path-output", str(work), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return work / "_build" / "html"


@pytest.mark.site
def test_every_chapter_page_links_to_its_notebook(launch_site):
    owner, repo = urlparse(REPO).path.strip("/").split("/")
    assert CHAPTERS
    for stem in CHAPTERS:
        notebook = f"book/{stem}.ipynb"
        assert (ROOT / notebook).is_file()
        links = launch_links((launch_site / "book" / f"{stem}.html").read_text())
        binder = f"https://mybinder.org/v2/gh/{owner}/{repo}/main?urlpath=lab/tree/{notebook}"
        colab = f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/{notebook}"
        assert binder in links and colab in links, (stem, links)
        hub = [urlparse(u) for u in links if u.startswith(HUB)]
        assert len(hub) == 1 and hub[0].path == "/hub/user-redirect/git-pull", (stem, links)
        query = parse_qs(hub[0].query)
        assert query == {"repo": [REPO], "urlpath": [f"lab/tree/{repo}/{notebook}"], "branch": ["main"]}, query
    for entry in [PAGES["root"]] + [ch["file"] for part in PAGES["parts"] for ch in part["chapters"]]:
        if pathlib.Path(entry).name not in CHAPTERS:  # a markdown page has nothing to launch
            assert not launch_links((launch_site / f"{entry}.html").read_text()), entry


@pytest.mark.site
def test_the_launch_buttons_load_nothing_remote(launch_site):
    for page in (launch_site / "book").glob("*.html"):
        html = page.read_text()
        remote = re.findall(r'<(?:script|img|iframe)[^>]+src="(?:https?:)?//[^"]+"', html)
        remote += [r for r in re.findall(r'<link[^>]+href="(?:https?:)?//[^"]+"[^>]*>', html)
                   if "stylesheet" in r or "preload" in r]
        assert not remote, (page.name, remote)


@pytest.mark.site
def test_the_built_site_follows_the_staged_setting():
    """The site `make book` built has launch buttons exactly when its staged _config.yml set a repository."""
    staged = yaml.safe_load((STAGE / "_config.yml").read_text())
    on = bool(staged.get("repository", {}).get("url")) and bool(staged["launch_buttons"].get("binderhub_url"))
    for stem in CHAPTERS:
        links = launch_links((SITE / "book" / f"{stem}.html").read_text())
        assert bool(links) == on, (stem, on, links)


def test_the_workflow_publishes_the_site_from_main():
    wf = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    jobs = wf["jobs"]
    tested = [name for name, job in jobs.items() if any("make test" in s.get("run", "") for s in job["steps"])]
    assert len(tested) == 1
    build = jobs[tested[0]]
    upload = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert "refs/heads/main" in upload[0].get("if", "") and "push" in upload[0].get("if", "")
    assert "REPOSITORY_URL" in json.dumps(build.get("env", {}))
    deploy = [job for job in jobs.values()
              if any(s.get("uses", "").startswith("actions/deploy-pages@") for s in job["steps"])]
    assert len(deploy) == 1
    deploy = deploy[0]
    assert deploy["needs"] == tested[0] or deploy["needs"] == [tested[0]]
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
