"""Write README.md from nbs/index.ipynb (nbdev_readme needs quarto, which these machines lack).

Markdown cells are copied as they are, code cells without a `#|` directive become python blocks.
`python .ci/readme.py --check` exits 1 when README.md is out of date.
"""
import json, pathlib, sys

def render(nb_path="nbs/index.ipynb"):
    out = []
    for c in json.loads(pathlib.Path(nb_path).read_text())["cells"]:
        src = "".join(c["source"]).strip()
        if not src: continue
        if c["cell_type"] == "markdown": out.append(src)
        elif c["cell_type"] == "code" and not src.startswith("#|"): out.append(f"```python\n{src}\n```")
    return "<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(out) + "\n"

if __name__ == "__main__":
    text, readme = render(), pathlib.Path("README.md")
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("CI FAILED: README.md is out of date with nbs/index.ipynb: run python .ci/readme.py and commit")
        print("README.md is in sync with nbs/index.ipynb")
    else: readme.write_text(text)
