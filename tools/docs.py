"""The documentation: README.md and the site's sidebar from nbs/index.ipynb, the site, a server.

    python tools/docs.py readme [--check]  README.md and nbs/sidebar.yml from nbs/index.ipynb
    python tools/docs.py build [--out DIR]  the site, into _docs/ (nbdev_docs where quarto is installed)
    python tools/docs.py serve [--port N]   build, then serve it on http://127.0.0.1:N (8000)

README.md is written here rather than by `nbdev_readme` because `nbdev_readme` needs quarto, and the
`quarto-cli` package on the package index is a source archive that downloads the binary from GitHub
while it installs: CI and these machines cannot reach it. The site is built by `nbdev_docs` where
quarto exists; elsewhere the notebooks go through nbdev's own processing (`proc_nbs`, the step
`nbdev_docs` starts with) and then pandoc, which quarto also runs underneath. Neither executes a
notebook: a page shows the outputs its notebook was saved with. Maths is MathML in both.
"""
import argparse, html, json, os, pathlib, posixpath, re, shutil, subprocess, sys, tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
HEADER = "<!-- generated from nbs/index.ipynb by `python tools/docs.py readme`: edit the notebook, not this file -->"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+\.ipynb)\)")

def _cells(nb_path=NBS / "index.ipynb"): return json.loads(pathlib.Path(nb_path).read_text())["cells"]
def _src(c): return "".join(c["source"]).strip()

FIGURES = "<!-- bench-figures -->"  # in the index: replaced by the benchmark table rendered from data/bench_*.json

def _figures(src):
    "The index's text with the benchmark-table marker replaced by the table that chapter 40 renders from the records."
    if FIGURES not in src: return src
    sys.path.insert(0, str(ROOT))
    from sparse_ssm.bench import figures_table
    return src.replace(FIGURES, figures_table(ROOT / "data"))

def render_readme(nb_path=NBS / "index.ipynb"):
    "README.md's text: markdown cells as they are, notebook links made relative to the repo root."
    out = []
    for c in _cells(nb_path):
        src = _src(c)
        if not src: continue
        if c["cell_type"] == "markdown": out.append(LINK.sub(lambda m: f"[{m[1]}](nbs/{m[2]})", _figures(src)))
        elif c["cell_type"] == "code" and not src.startswith("#|"): out.append(f"```python\n{src}\n```")
    return HEADER + "\n\n" + "\n\n".join(out) + "\n"

def course_map(nb_path=NBS / "index.ipynb"):
    "The index's map as [(section, [(subsection or None, [notebook paths])])], read from its headings and tables."
    sections, in_map = [], False
    for c in _cells(nb_path):
        if c["cell_type"] != "markdown": continue
        for line in _src(c).splitlines():
            if line.startswith("## "): in_map = line.startswith("## The course")
            elif not in_map: continue
            elif line.startswith("### "): sections.append((line[4:].strip(), [(None, [])]))
            elif line.startswith("#### ") and sections: sections[-1][1].append((line[5:].strip(), []))
            elif line.startswith("|") and sections: sections[-1][1][-1][1].extend(m[2] for m in LINK.finditer(line.split("|")[1]))
    return [(s, [(sub, nbs) for sub, nbs in subs if nbs]) for s, subs in sections]

def render_sidebar(nb_path=NBS / "index.ipynb"):
    "nbs/sidebar.yml (quarto's sidebar, as nbdev_sidebar writes it) grouped as the index's map."
    q = lambda s: json.dumps(s)  # JSON strings are YAML strings
    out = ["# generated from nbs/index.ipynb's map by `python tools/docs.py readme`: edit the notebook",
           "website:", "  sidebar:", "    contents:", "    - index.ipynb"]
    for sec, subs in course_map(nb_path):
        out += [f"    - section: {q(sec)}", "      contents:"]
        for sub, nbs in subs:
            if sub is None: out += [f"      - {n}" for n in nbs]
            else: out += [f"      - section: {q(sub)}", "        contents:"] + [f"        - {n}" for n in nbs]
    return "\n".join(out) + "\n"

def readme(check=False):
    "Write README.md and nbs/sidebar.yml, or with `check` fail when either is out of date."
    want = {ROOT / "README.md": render_readme(), NBS / "sidebar.yml": render_sidebar()}
    if check:
        stale = [p.name for p, t in want.items() if not p.exists() or p.read_text() != t]
        if stale: sys.exit(f"CI FAILED: {', '.join(stale)} out of date with nbs/index.ipynb: run python tools/docs.py readme and commit")
        return print("README.md and nbs/sidebar.yml are in sync with nbs/index.ipynb")
    for p, t in want.items(): p.write_text(t)
    missing = sorted(p.relative_to(NBS).as_posix() for p in NBS.rglob("*.ipynb")
                     if ".ipynb_checkpoints" not in p.parts and p.name != "index.ipynb"
                     and p.relative_to(NBS).as_posix() not in {n for _, subs in course_map() for _, ns in subs for n in ns})
    if missing: print("note: not in the index's map, so not in the sidebar: " + ", ".join(missing))

# ---- the site without quarto: nbdev's processing, then pandoc --------------------------------

def pandoc_path():
    "pandoc from the pypandoc-binary wheel, else from PATH."
    try:
        import pypandoc
        return pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        p = shutil.which("pandoc")
        if p: return p
        sys.exit("error: no pandoc: pip install pypandoc-binary (it is in the dev extra), or install quarto")

def _directives(src):
    "The `#| key: value` lines at the top of a code cell, and the rest of it."
    lines, d = src.splitlines(), {}
    while lines and lines[0].startswith("#|"):
        k, _, v = lines.pop(0)[2:].partition(":")
        d[k.strip()] = v.strip()
    return d, "\n".join(lines)

QUARTO_ATTRS = re.compile(r'(?<=\))\{target="_blank"[^}]*\}')  # show_doc's link attributes, which quarto reads

def _for_pandoc(nb):
    "A processed notebook as pandoc's ipynb reader takes it; returns (notebook, front matter)."
    import yaml
    cells, front = [], {}
    for c in nb["cells"]:
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if c["cell_type"] == "raw" and src.startswith("---"): front = yaml.safe_load(src.strip().strip("-")) or {}; continue
        if c["cell_type"] != "code": cells.append(c); continue
        d, body = _directives(src)
        outs = []
        for o in c.get("outputs", []):
            o.setdefault("output_type", "display_data")
            if o["output_type"] == "execute_result" and o.get("execution_count") is None:  # pandoc wants a number
                o["output_type"] = "display_data"; o.pop("execution_count", None)
            if o["output_type"] in ("display_data", "execute_result"): o.setdefault("metadata", {})
            outs.append(o)
        asis = [o for o in outs if "text/markdown" in o.get("data", {})]
        if d.get("output") == "asis" or (asis and d.get("echo") == "false"):  # show_doc: its markdown is the page
            cells += [{"cell_type": "markdown", "metadata": {}, "source": QUARTO_ATTRS.sub("", "".join(o["data"]["text/markdown"]))}
                      for o in asis]
            continue
        if d.get("output") == "false": outs = []
        c.pop("has_sd", None)
        cells.append({**c, "source": "" if d.get("echo") == "false" else body, "outputs": outs, "execution_count": None})
    return {**nb, "cells": cells}, front

def _nav_html(page, pages):
    "The sidebar as nested lists, from nbs/sidebar.yml; `pages` maps notebook stems to (title, output path)."
    import yaml
    side = yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    here = posixpath.dirname(pages[page][1])
    def item(e):
        if isinstance(e, dict):
            return f'<li class="section"><span>{html.escape(e["section"])}</span><ul>{"".join(map(item, e["contents"]))}</ul></li>'
        stem = posixpath.splitext(e)[0]
        if stem not in pages: return ""
        cur = ' class="current"' if stem == page else ""
        return f'<li{cur}><a href="{posixpath.relpath(pages[stem][1], here or ".")}">{html.escape(pages[stem][0])}</a></li>'
    return f'<nav id="sidebar"><ul>{"".join(map(item, side))}</ul></nav>'

def _relink(text, page, pages):
    "Links to notebooks and nbdev's links to the published site, made relative to this page."
    from nbdev.config import get_config
    cfg, here = get_config(), posixpath.dirname(pages[page][1]) or "."
    site = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip("/") + "/"
    def nb(m):
        stem = posixpath.normpath(posixpath.join(posixpath.dirname(page), m[1]))
        return f'href="{posixpath.relpath(pages[stem][1], here)}{m[2] or ""}"' if stem in pages else m[0]
    text = re.sub(r'href="([^":#]+)\.ipynb(#[^"]*)?"', nb, text)
    return re.sub(r'href="' + re.escape(site) + r'([^"]*)"', lambda m: f'href="{posixpath.relpath(m[1] or "index.html", here)}"', text)

CSS = """body{max-width:52em;margin:0 0 0 19em;padding:1em 2em}
#sidebar{position:fixed;top:0;left:0;bottom:0;width:17em;overflow:auto;padding:1em;background:#f6f6f6;font-size:.85em}
#sidebar ul{list-style:none;padding-left:.8em;margin:.2em 0}#sidebar>ul{padding-left:0}
#sidebar .section>span{font-weight:bold}#sidebar .current>a{font-weight:bold;color:#000}
img{max-width:100%}pre{overflow-x:auto}math[display=block]{overflow-x:auto}
"""

def _exec_for_docs(self, cell):
    """nbdev's `exec_show_docs`, made safe for these notebooks: run exported cells and `show_doc` cells
    as nbdev does, but of any other cell only its import statements (nbdev runs every cell that imports
    anything: `#| slow` runs and cells that need earlier, unexecuted cells). A failure is a note."""
    from fastcore.basics import str2bool
    from nbdev.processors import _do_eval, _show_docs
    if not self.nb.has_docs_ or not hasattr(self, "k"): return
    if str2bool(getattr(self.nb, "frontmatter_", {}).get("skip_showdoc", False)) or not _do_eval(cell): return
    import ast
    trees = cell.parsed_()
    if cell.directives_.keys() & {"export", "exports", "exporti", "exec_doc"} or _show_docs(trees): self.k.cell(cell)
    else: self.k.run("\n".join(ast.unparse(t) for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))))
    if self.k.exc:
        print(f"note: {getattr(self.nb, 'frontmatter_', {}).get('title', '')!r} cell {cell.idx_}: {self.k.exc!r} (its API docs may be missing)")
        self.k.exc = None

def proc_nbs(src_dir):
    "nbdev's processing of the notebooks into _proc/, the first step of nbdev_docs (with `_exec_for_docs`)."
    import warnings, nbdev.processors, nbdev.serve
    nbdev.processors.exec_show_docs.__call__ = _exec_for_docs
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Found cells containing imports")
        return pathlib.Path(nbdev.serve.proc_nbs(str(src_dir), n_workers=0, force=True))  # in this process: the patch holds

def build_pandoc(src_dir, out):
    "The site from the notebooks in `src_dir`, through nbdev's processing and pandoc; pages named as quarto names them."
    from nbdev.doclinks import _nbpath2html
    cache = proc_nbs(src_dir)
    out.mkdir(parents=True, exist_ok=True)
    nbs, pages = {}, {}
    for p in sorted(cache.rglob("*.ipynb")):
        stem = p.relative_to(cache).with_suffix("").as_posix()
        nbs[stem] = nb, front = _for_pandoc(json.loads(p.read_text()))
        name = front.get("output-file") or _nbpath2html(pathlib.Path(p.name)).name  # e.g. 07c_ssd -> ssd.html
        pages[stem] = (front.get("title") or stem, posixpath.join(posixpath.dirname(stem), name))
    pandoc = pandoc_path()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "style.css").write_text(CSS)
        for stem, (nb, front) in nbs.items():
            (tmp / "nb.ipynb").write_text(json.dumps(nb))
            (tmp / "meta.json").write_text(json.dumps({"title": pages[stem][0], "subtitle": front.get("description", "")}))
            (tmp / "nav.html").write_text(_nav_html(stem, pages))
            dest = out / pages[stem][1]
            dest.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([pandoc, str(tmp / "nb.ipynb"), "-f", "ipynb", "-t", "html5", "-s", "--mathml",
                            "--embed-resources", "--css", str(tmp / "style.css"), "--metadata-file", str(tmp / "meta.json"),
                            "--include-before-body", str(tmp / "nav.html"), "-o", str(dest)], check=True, cwd=tmp)
            dest.write_text(_relink(dest.read_text(), stem, pages))
    return out

def build_quarto(out):
    "What nbdev_docs does, less rewriting README.md (ours, see above) and with `_exec_for_docs`."
    from nbdev.quarto import refresh_quarto_yml
    import nbdev.doclinks
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    cache = proc_nbs(NBS)
    subprocess.run(["quarto", "render", "--no-cache"], check=True, cwd=cache)
    shutil.move(str(cache / "_docs"), str(out))

def build(out=None, src_dir=None):
    "The site: quarto where it is installed, else pandoc; from the notebooks as saved."
    out = pathlib.Path(out or ROOT / "_docs").resolve()
    os.chdir(ROOT)
    if out.exists(): shutil.rmtree(out)
    if shutil.which("quarto"): build_quarto(out)
    else: build_pandoc(NBS, out)
    print(f"site built in {out}")
    return out

def serve(port=8000, out=None):
    import functools, http.server
    out = build(out)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as srv:
        print(f"serving {out} on http://127.0.0.1:{port}/ (Ctrl-C stops)")
        try: srv.serve_forever()
        except KeyboardInterrupt: pass

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("readme", help="write README.md and nbs/sidebar.yml from nbs/index.ipynb")
    r.add_argument("--check", action="store_true", help="fail when they are out of date instead")
    b = sub.add_parser("build", help="build the site")
    b.add_argument("--out", help="output folder (default _docs)")
    s = sub.add_parser("serve", help="build the site, then serve it")
    s.add_argument("--port", type=int, default=8000)
    a = ap.parse_args()
    if a.cmd == "readme": readme(a.check)
    elif a.cmd == "build": build(a.out)
    else: serve(a.port)
