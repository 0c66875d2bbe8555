#!/usr/bin/env python3
"""Import graph of src/ at file level, and its cycles (strongly connected components).

An edge A -> B means file A names an item of module B through a `crate::` or
`super::` path (in `use` lines or inline). `pub use` lines are facades
(re-exports for callers), not dependencies of the file's own code, and are not
counted. Test modules (`#[cfg(test)] mod tests { ... }` at the end of a file)
are ignored. Exit status 1 when there is a cycle.

    python3 scripts/import_cycles.py [--edges]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_files():
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            mods[tuple(parts)] = "src/" + rel
    return mods


def strip_tests(text):
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+tests\b", text)
    return text[: m.start()] if m else text


def expand_groups(path):
    """`a::{b, c::{d}}` -> [a::b, a::c::d] (enough for reference paths)."""
    m = re.match(r"^([\w:]*?)\{(.*)\}$", path, re.S)
    if not m:
        return [path]
    prefix, inner = m.group(1), m.group(2)
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    res = []
    for o in out:
        res.extend(expand_groups(prefix + o))
    return res


def refs(text, own):
    text = strip_tests(text)
    text = re.sub(r"//[^\n]*", "", text)
    found = []
    # use statements (possibly multi-line, with groups)
    for m in re.finditer(r"(?m)^\s*(pub(\([^)]*\))?\s+)?use\s+([^;]+);", text):
        if m.group(1):
            continue  # a facade
        for p in expand_groups(re.sub(r"\s+", "", m.group(3))):
            found.append(p)
    body = re.sub(r"(?m)^\s*(pub(\([^)]*\))?\s+)?use\s+[^;]+;", "", text)
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", body):
        found.append(m.group(1))
    out = []
    for p in found:
        segs = p.split("::")
        if segs[0] == "crate":
            segs = segs[1:]
        elif segs[0] == "super":
            base = list(own)
            while segs and segs[0] == "super":
                base = base[:-1]
                segs = segs[1:]
            segs = base + segs
        elif segs[0] == "self":
            segs = list(own) + segs[1:]
        else:
            continue
        out.append(segs)
    return out


def resolve(segs, mods):
    for n in range(len(segs), -1, -1):
        if tuple(segs[:n]) in mods:
            return tuple(segs[:n])
    return None


def main():
    mods = module_files()
    edges = {m: set() for m in mods}
    for mod, path in mods.items():
        own = mod
        with open(os.path.join(ROOT, "..", path)) as f:
            text = f.read()
        for segs in refs(text, own):
            target = resolve(segs, mods)
            if target is not None and target != mod and target != ():
                edges[mod].add(target)
    # Tarjan's SCC
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            strong(v)
    if "--edges" in sys.argv:
        for m in sorted(edges):
            print(mods[m], "->", ", ".join(sorted(mods[t] for t in edges[m])))
    cycles = [c for c in sccs if len(c) > 1]
    for c in cycles:
        print("cycle:", " ".join(sorted(mods[m] for m in c)))
    print(f"{len(mods)} files, {sum(len(e) for e in edges.values())} edges, {len(cycles)} cycle(s)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
