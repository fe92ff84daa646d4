"""Launch buttons from one setting, the repository's address.

    python tools/publish.py launch STAGE      (make html runs it on the staged copy, before the build)

REPOSITORY_URL=https://github.com/<owner>/<repo> (an environment or make variable) switches the launch
buttons on: every chapter page then links to its own notebook, book/<chapter>.ipynb on the branch
REPOSITORY_BRANCH (default main), on Binder (mybinder.org, opened in JupyterLab) and in Google Colab; with
JUPYTERHUB_URL=https://<hub> also on that JupyterHub (through nbgitpuller, which the hub must have).
Unset, the staged _config.yml is left as it is, and _config.yml keeps every launch button off. The setting
only adds links: nothing is loaded from those services when a page is read.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

import yaml

BINDER = "https://mybinder.org"
COLAB = "https://colab.research.google.com"
GITHUB = re.compile(r"^https://github\.com/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")


def launch_settings(repository_url: str, branch: str = "main", jupyterhub_url: str = "") -> dict:
    """The _config.yml entries that switch the launch buttons on for ``repository_url`` (on GitHub)."""
    m = GITHUB.match(repository_url.strip())
    if not m:
        raise SystemExit(f"REPOSITORY_URL must be a GitHub repository, https://github.com/<owner>/<repo>, "
                         f"not {repository_url!r} (Colab opens notebooks from GitHub only)")
    hub = jupyterhub_url.strip().rstrip("/")
    if hub and not hub.startswith("https://"):
        raise SystemExit(f"JUPYTERHUB_URL must be an https:// address, not {jupyterhub_url!r}")
    return {
        # path_to_book is empty: the book's root (this _config.yml) is the repository's root
        "repository": {"url": f"https://github.com/{m['owner']}/{m['repo']}", "path_to_book": "",
                       "branch": branch or "main"},
        "launch_buttons": {"notebook_interface": "jupyterlab", "binderhub_url": BINDER, "colab_url": COLAB,
                           "jupyterhub_url": hub, "thebe": False},
    }


def write_launch(stage: pathlib.Path, env=os.environ) -> dict | None:
    """Switch the launch buttons on in ``stage``/_config.yml if ``env`` has REPOSITORY_URL; return what it set."""
    url = env.get("REPOSITORY_URL", "").strip()
    if not url:
        return None
    settings = launch_settings(url, env.get("REPOSITORY_BRANCH", "").strip() or "main",
                               env.get("JUPYTERHUB_URL", ""))
    path = stage / "_config.yml"
    config = yaml.safe_load(path.read_text())
    for key, value in settings.items():
        config[key] = {**(config.get(key) or {}), **value}
    path.write_text(f"# staged by tools/publish.py launch: launch buttons for {settings['repository']['url']}\n"
                    + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return settings


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "launch":
        print(__doc__.split("\n\n")[1])
        return 2
    settings = write_launch(pathlib.Path(argv[1]))
    if settings:
        buttons = ["Binder", "Colab"] + (["JupyterHub"] if settings["launch_buttons"]["jupyterhub_url"] else [])
        print(f"launch buttons ({', '.join(buttons)}) for {settings['repository']['url']} "
              f"on {settings['repository']['branch']}")
    else:
        print("launch buttons off (REPOSITORY_URL is not set)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
