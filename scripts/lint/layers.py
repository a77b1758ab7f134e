#!/usr/bin/env python3
"""Architecture checks over the workspace's Rust sources (no build needed).

1. No import circles: every source file is a module; a path that names another module of the same crate
   (`crate::a::b`, `super::x`, `self::y`, a child's `x::y`, and `use` trees of them) is an edge to the deepest
   module it names. A `mod x;` declaration is not an edge, and neither is a path between a module and its own
   ancestors or descendants (a module and its submodules are one unit). Any strongly connected set of two or
   more modules is reported.
2. Layer rules (README, "Layers"): the modules of a layer may not name the modules listed as forbidden for it.
3. No function body over 100 lines outside tests (files under tests/, `#[cfg(test)]` modules, `#[test]` fns).

Exit status 1 with one line per violation; 0 when the workspace is clean.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRATES = ["types", "store", "trainer", "app", "server"]
MAX_FN_LINES = 100

# Layer rules: (crate, module prefix) may not name (crate, module prefix).
FORBIDDEN = [
    # operations never reach the runners or the edges that call them
    (("server", "ops"), ("server", "jobs")),
    (("server", "ops"), ("server", "loop")),
    (("server", "ops"), ("server", "web")),
    # the command line is clap declarations only
    (("server", "cli"), ("server", "ops")),
    (("server", "cli"), ("server", "jobs")),
    (("server", "cli"), ("server", "loop")),
    (("server", "cli"), ("server", "web")),
    # the queue runner and the loop are not web code
    (("server", "jobs"), ("server", "web")),
    (("server", "loop"), ("server", "web")),
    (("server", "loop"), ("server", "jobs")),
]

# Modules that others reach only through their facade (the module itself, never its submodules), except from
# inside: (crate, module).
FACADES = [("server", "ops")]

# Crates that must not depend on others of the workspace (checked in their Cargo.toml).
CRATE_RULES = {
    "types": [],
    "store": ["types"],
    "trainer": ["types"],
    "app": ["types", "store"],
    "server": ["types", "store", "trainer", "app"],
}


def strip_comments_and_strings(src):
    """Blanks comments, string and char literals (keeps line breaks), so braces and paths in them don't count."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 260]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + re.sub(r"[^\n]", " ", src[i + 2:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append('"' + re.sub(r"[^\n]", " ", src[i + 1:j - 1]) + '"')
            i = j
        elif c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", src[i:])
            if m:
                out.append("' '" + " " * (len(m.group(0)) - 3))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def modules_of(crate):
    """{module path tuple: file} for a crate's src/ tree."""
    src = os.path.join(ROOT, crate, "src")
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods[tuple(parts)] = os.path.join(dirpath, f)
    return mods


def use_paths(text):
    """Every path used: expanded `use` trees and inline `crate::`/`super::`/`self::` paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand_tree(re.sub(r"\s+", "", m.group(1))))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)", text):
        paths.append(m.group(1).split("::"))
    return paths


def expand_tree(tree):
    tree = re.sub(r"\bas[A-Za-z_][A-Za-z0-9_]*", "", tree) if False else tree
    out = []

    def rec(prefix, s):
        s = s.strip()
        if not s:
            return
        depth, i = 0, 0
        # split at the first top-level '{'
        brace = None
        for i, ch in enumerate(s):
            if ch == "{":
                brace = i
                break
        if brace is None:
            out.append(prefix + [p for p in re.split(r"::", re.sub(r"as\w+$", "", s)) if p])
            return
        head = [p for p in s[:brace].split("::") if p]
        body = s[brace + 1:s.rfind("}")]
        parts, depth, cur = [], 0, ""
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for p in parts:
            rec(prefix + head, p)

    rec([], tree)
    return out


def resolve(here, path, mods, is_mod_file):
    """The deepest module of `mods` that `path` (a list) names, seen from module `here`."""
    if not path:
        return None
    if path[0] == "crate":
        base, rest = (), path[1:]
    elif here + (path[0],) in mods:
        # a 2018-style path to a child module (`mod x;` then `x::y`)
        base, rest = here, path
    elif path[0] in ("super", "self"):
        # a file module `a/b.rs` is module (a, b); `super` is (a); in `a/mod.rs` (module (a,)) super is ().
        base = list(here)
        rest = path
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
        base = tuple(base)
    else:
        return None
    best = None
    cur = base
    if cur in mods:
        best = cur
    for p in rest:
        cur = cur + (p,)
        if cur in mods:
            best = cur
        else:
            break
    return best


def tarjan(nodes, edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
            if len(comp) > 1:
                out.append(comp)

    for v in nodes:
        if v not in index:
            strong(v)
    return out


def test_ranges(text):
    """Line ranges (1-based, inclusive) of `#[cfg(test)]` items and `#[test]` functions."""
    ranges = []
    for m in re.finditer(r"#\[(?:cfg\(test\)|test)\]", text):
        start = text.find("{", m.end())
        if start < 0:
            continue
        end = match_brace(text, start)
        ranges.append((text.count("\n", 0, m.start()) + 1, text.count("\n", 0, end) + 1))
    return ranges


def match_brace(text, start):
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def long_functions(text):
    """(name, first line, lines) of every fn whose body spans more than MAX_FN_LINES lines."""
    out = []
    tests = test_ranges(text)
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", text):
        # the body: the first '{' after the signature that is not inside parentheses/generics of the signature
        j, depth = m.end(), 0
        while j < len(text):
            ch = text[j]
            if ch in "(<[":
                depth += 1
            elif ch in ")>]":
                depth -= 1
            elif ch == ";" and depth <= 0:
                j = -1
                break
            elif ch == "{" and depth <= 0:
                break
            j += 1
        if j < 0 or j >= len(text):
            continue
        end = match_brace(text, j)
        first = text.count("\n", 0, m.start()) + 1
        last = text.count("\n", 0, end) + 1
        if any(a <= first <= b for a, b in tests):
            continue
        if last - first + 1 > MAX_FN_LINES:
            out.append((m.group(1), first, last - first + 1))
    return out


def main():
    problems = []
    for crate in CRATES:
        if not os.path.isdir(os.path.join(ROOT, crate, "src")):
            continue
        mods = modules_of(crate)
        edges = {}
        for here, path in mods.items():
            raw = open(path, encoding="utf-8").read()
            text = strip_comments_and_strings(raw).replace("r#loop", "loop")
            # `mod x;` and `mod x { … }` declarations are not uses
            for p in use_paths(text):
                target = resolve(here, p, mods, path.endswith("mod.rs"))
                if target is None or target == here:
                    continue
                # A module and its own submodules are one unit (a parent re-exports its children, children use
                # their parent's items): only edges between different subtrees can close a circle.
                if target[: len(here)] == here or here[: len(target)] == target:
                    continue
                edges.setdefault(here, set()).add(target)
            for name, line, n in long_functions(text):
                problems.append(f"{os.path.relpath(path, ROOT)}:{line}: fn {name} is {n} lines (at most {MAX_FN_LINES})")
        for comp in tarjan(sorted(mods), edges):
            names = " ↔ ".join("::".join((crate,) + c) for c in sorted(comp))
            inside = set(comp)
            why = "; ".join(
                f"{'::'.join(a) or crate} → {'::'.join(b) or crate}"
                for a in sorted(inside) for b in sorted(edges.get(a, ())) if b in inside)
            problems.append(f"import circle in {crate}: {names} ({why})")
        for (c1, m1), (c2, m2) in FORBIDDEN:
            if c1 != crate:
                continue
            for src_mod, targets in edges.items():
                if src_mod[:1] != (m1,):
                    continue
                for t in targets:
                    if t[:1] == (m2,):
                        problems.append(
                            f"layer rule: {crate}::{'::'.join(src_mod)} names {crate}::{'::'.join(t)} ({m1} may not use {m2})")
        for fcrate, fmod in FACADES:
            if fcrate != crate:
                continue
            for src_mod, targets in edges.items():
                if src_mod[:1] == (fmod,):
                    continue
                for t in targets:
                    if t[:1] == (fmod,) and len(t) > 1:
                        problems.append(
                            f"facade rule: {crate}::{'::'.join(src_mod)} names {crate}::{'::'.join(t)} (use what {fmod} exports)")
    for crate, allowed in CRATE_RULES.items():
        toml = os.path.join(ROOT, crate, "Cargo.toml")
        if not os.path.isfile(toml):
            continue
        deps = set(re.findall(r"^(\w+)(?:\.workspace|\s*=)", open(toml).read(), re.M))
        for other in CRATE_RULES:
            if other != crate and other in deps and other not in allowed:
                problems.append(f"crate rule: {crate} depends on {other} (allowed: {', '.join(allowed) or 'none'})")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} architecture problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
