"""Check in a real headless browser that the documentation site renders its maths and its plots.

    python tools/check_docs.py [--site DIR] [--shots DIR]

Builds the pages of nbs/index.ipynb, the first chapter (01_hippo) and the finale
(30_train_and_generate) as `python tools/docs.py build` does, into a temporary folder (a chapter
saved without outputs is executed into a temporary copy first, so that its plots exist; the
finale, which trains a model, is not), or takes an already built site with --site. Then Debian's
Chromium loads each page headless and offline; from the DOM it reads (1) rendered maths: MathML,
KaTeX or MathJax elements, and no `$...$` left as text outside code, (2) one <img> with image data
for each figure the notebook holds, (3) the sidebar's two parts. It keeps a screenshot of each page
(and of 01_hippo's first figure) in --shots (docs_check/ by default). Exits 1 naming what failed.
"""
import argparse, html.parser, json, pathlib, re, shutil, subprocess, sys, tempfile
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import docs

PAGES = ("index", "01_hippo", "30_train_and_generate")  # found anywhere under nbs/, so nbs/spine/... works too
EXECUTE = {"01_hippo"}  # executed into a temporary copy when saved without outputs (seconds, no training)
TEX = re.compile(r"(?<![\w$\\])\$(?=\S)[^$]*?(?<=\S)\$(?!\d)|\\\(|\\\[")  # $x$ (as pandoc reads it), \( or \[ left as text

def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name): return shutil.which(name)
    sys.exit("error: no chromium on PATH: apt-get update && apt-get install -y chromium")

def browse(url, profile, *args):
    "Run headless Chromium, offline, on `url`; returns its stdout."
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--hide-scrollbars", "--virtual-time-budget=10000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout

class DomStats(html.parser.HTMLParser):
    "Counts of what the check looks for, from a DOM dump."
    SKIP = {"pre", "code", "script", "style", "math", "mjx-container", "annotation", "textarea"}
    def __init__(self):
        super().__init__()
        self.math = self.imgs = 0; self.raw_tex, self.ids, self.text = [], [], []
        self.skip = 0; self.stack = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs); cls = a.get("class") or ""
        if tag in ("math", "mjx-container") or "katex" in cls.split(): self.math += 1
        if tag == "img" and re.match(r"data:image/\w+;base64,.{100}|[^:]+\.(png|svg|jpe?g)$", a.get("src") or ""):
            self.imgs += 1
            if self.imgs == 1: self.first_img_anchor = self.ids[-1] if self.ids else None
        if a.get("id"): self.ids.append(a["id"])
        if tag in ("img", "br", "hr", "meta", "link", "input", "col", "source", "wbr"): return
        self.stack.append(tag)
        if tag in self.SKIP: self.skip += 1
    def handle_endtag(self, tag):
        if tag not in self.stack: return
        while self.stack:
            t = self.stack.pop()
            if t in self.SKIP: self.skip -= 1
            if t == tag: break
    def handle_data(self, data):
        self.text.append(data)
        if not self.skip: self.raw_tex += TEX.findall(data)

def expected(nb_path):
    "(has maths in prose, number of figures) of a notebook."
    cells = json.loads(pathlib.Path(nb_path).read_text())["cells"]
    maths = any(c["cell_type"] == "markdown" and TEX.search("".join(c["source"])) for c in cells)
    figs = sum(1 for c in cells for o in c.get("outputs", []) if any(k.startswith("image/") for k in o.get("data", {})))
    return maths, figs

def has_outputs(nb_path): return any(c.get("outputs") for c in json.loads(pathlib.Path(nb_path).read_text())["cells"])

def notebooks():
    "{stem: path relative to nbs/} of the checked notebooks."
    found = {p.stem: p.relative_to(docs.NBS) for p in docs.NBS.rglob("*.ipynb") if p.stem in PAGES and ".ipynb_checkpoints" not in p.parts}
    missing = [s for s in PAGES if s not in found]
    if missing: sys.exit(f"error: no notebook {', '.join(missing)} under {docs.NBS}")
    return found

def page_path(rel):
    "Where a notebook's page is: quarto's name for it, as nbdev's links expect (01_hippo -> hippo.html)."
    from nbdev.doclinks import _nbpath2html
    return rel.parent / _nbpath2html(pathlib.Path(rel.name)).name

def prepare(tmp):
    "Copies of the checked notebooks, 01_hippo executed if it was saved without outputs."
    src = tmp / "nbs"; src.mkdir()
    for stem, rel in notebooks().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(docs.NBS / rel, src / rel)
        if stem in EXECUTE and not has_outputs(src / rel):
            print(f"{rel} has no saved outputs: executing a temporary copy")
            code = f"from execnb.shell import CaptureShell; CaptureShell().execute({str(src / rel)!r}, {str(src / rel)!r}, exc_stop=True)"
            subprocess.run([sys.executable, "-c", code], check=True, cwd=docs.NBS / rel.parent, timeout=600)  # where nbdev_test runs it
    return src

def main(site=None, shots="docs_check"):
    shots = pathlib.Path(shots); shots.mkdir(parents=True, exist_ok=True)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if site: site, src = pathlib.Path(site), docs.NBS
        else: src = prepare(tmp); site = docs.build_pandoc(src, tmp / "site")
        for stem, rel in notebooks().items():
            page = site / page_path(rel)
            if not page.exists(): failures.append(f"{page}: not built"); continue
            want_math, want_figs = expected(src / rel)
            d = DomStats(); d.feed(browse(page.as_uri(), tmp / "profile", "--dump-dom"))
            text = " ".join(d.text)
            print(f"{stem}: {d.math} maths elements, {len(d.raw_tex)} raw TeX, {d.imgs} figures (notebook: maths {want_math}, {want_figs} figures)")
            if want_math and not d.math: failures.append(f"{stem}: the notebook has maths but the page shows none rendered")
            if d.raw_tex: failures.append(f"{stem}: TeX left unrendered: {d.raw_tex[:3]}")
            if d.imgs < want_figs: failures.append(f"{stem}: {d.imgs} figures on the page, {want_figs} in the notebook")
            if stem == "01_hippo" and want_figs == 0: failures.append("01_hippo: no figures even after executing it")
            if not ("The spine" in text and "The annex" in text): failures.append(f"{stem}: the sidebar's spine and annex are missing")
            browse(page.as_uri(), tmp / "profile", "--window-size=1280,1600", f"--screenshot={(shots / f'{stem}.png').resolve()}")
            if stem == "01_hippo" and d.imgs:  # the first figure: headless Chromium paints a #fragment only in a frame
                frame = page.parent / "_figure.html"
                frame.write_text(f'<body style="margin:0"><iframe src="{page.name}#{getattr(d, "first_img_anchor", "")}" '
                                 'style="border:0;width:1280px;height:1600px"></iframe></body>')
                browse(frame.as_uri(), tmp / "profile", "--window-size=1280,1600", f"--screenshot={(shots / f'{stem}_figure.png').resolve()}")
                frame.unlink()
    for p in sorted(shots.glob("*.png")): _shrink(p)
    if failures:
        print("DOCS CHECK FAILED:\n  " + "\n  ".join(failures)); sys.exit(1)
    print(f"docs check: {len(PAGES)} pages render their maths and figures; screenshots in {shots}/")

def _shrink(p):
    "Keep the screenshots small: a 256-colour palette PNG."
    try: from PIL import Image
    except ImportError: return
    Image.open(p).convert("RGB").quantize(256).save(p, optimize=True)

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", help="check this built site (e.g. _docs) instead of building the pages")
    ap.add_argument("--shots", default="docs_check", help="where the screenshots go")
    a = ap.parse_args()
    main(a.site, a.shots)
