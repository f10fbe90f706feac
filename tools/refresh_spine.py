"""Re-execute the spine notebooks in course order and save them with their outputs; check that they carry them.

    python tools/refresh_spine.py            run every spine notebook (its default cells, as nbdev_test does),
                                             write the outputs into the notebook, then nbdev_clean it
    python tools/refresh_spine.py NAME ...   only these (e.g. 05_scan)
    python tools/refresh_spine.py --check    exit 1 naming every spine notebook whose committed outputs are missing

The spine is the path a reader walks from HiPPO to a language model; its notebooks are committed executed,
so that JupyterLab and the docs site show every plot and table. Cells marked `#| slow`, `#| cuda` or
`#| eval: false` are not run here (their outputs are cleared): a slow experiment stores its result in a
file under data/ that a default cell reads, prints, plots and asserts.
"""
import argparse, json, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPINE = sorted(p.stem for p in (ROOT / "nbs" / "spine").glob("*.ipynb"))  # the spine folder, in reading order
SKIP = re.compile(r"^#\|\s*(slow|cuda|eval:\s*false)\s*$", re.M)

def notebook(name):
    "The path of spine notebook `name`, wherever under nbs/ it lives."
    hits = [p for p in (ROOT / "nbs").rglob(f"{name}.ipynb") if ".ipynb_checkpoints" not in p.parts]
    if len(hits) != 1: sys.exit(f"error: spine notebook {name} found {len(hits)} times under nbs/; fix SPINE in {__file__}")
    return hits[0]

def runs(cell):
    "Whether a default run (nbdev_test without flags) executes this code cell."
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return cell["cell_type"] == "code" and not SKIP.search(src) and "nbdev_export(" not in src

def refresh(path):
    "Execute the default cells of `path` in its folder and write their outputs into it."
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    nb = read_nb(path)
    for c in nb.cells:
        if c.cell_type == "code" and not runs(c): c.outputs, c.execution_count = [], None
    cwd = os.getcwd(); os.chdir(path.parent)
    try: CaptureShell(path, mpl_format="png").run_all(nb, exc_stop=True, preproc=lambda c: not runs(c))
    finally: os.chdir(cwd)
    write_nb(nb, path)
    subprocess.run(["nbdev_clean", "--fname", str(path)], check=True, cwd=ROOT)

def missing(path):
    "What a committed spine notebook lacks: cells that run by default but carry no output of the kind they make."
    out = []
    for i, c in enumerate(json.loads(path.read_text())["cells"]):
        if not runs(c): continue
        src, kinds = "".join(c["source"]), {o.get("output_type") for o in c.get("outputs", [])}
        data = {k for o in c.get("outputs", []) for k in o.get("data", {})}
        if "error" in kinds: out.append(f"cell {i} holds an error")
        top = [l for l in src.splitlines() if l[:1] not in ("", " ", "\t", "#")]  # statements the cell itself runs
        if any(re.search(r"\bplt\.(show|plot|subplots|figure)\b", l) for l in top) and "image/png" not in data:
            out.append(f"cell {i} draws a plot but holds no image")
        if any(re.match(r"(print\(|for .*: print\()", l) for l in top) and not kinds & {"stream", "execute_result"}:
            out.append(f"cell {i} prints but holds no output")
    return out

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="spine notebooks to refresh (default: all)")
    ap.add_argument("--check", action="store_true", help="only check that the committed notebooks carry their outputs")
    a = ap.parse_args()
    bad = [n for n in a.names if n not in SPINE]
    if bad: ap.error(f"{', '.join(bad)} not in the spine; choose from {', '.join(SPINE)}")
    names = a.names or SPINE
    if a.check:
        problems = {n: missing(notebook(n)) for n in names}
        for n, p in problems.items():
            for line in p: print(f"{n}: {line}")
        if any(problems.values()): sys.exit(f"CI FAILED: spine notebooks lack their outputs; run python tools/refresh_spine.py and commit")
        print(f"spine outputs: {len(names)} notebooks carry the outputs of every cell that runs by default")
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        for n in names:
            t0 = time.time(); refresh(notebook(n)); print(f"{n}: refreshed in {time.time() - t0:.0f} s", flush=True)
