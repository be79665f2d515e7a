"""Render the s3-elector Helm chart without helm, for the tests.

No helm binary can be installed here, so this renders the subset of Go
templates and Sprig functions the chart uses, with Go template semantics:
`{{- ` / ` -}}` trimming, `define`/`include`, `if`/`else`/`end`, `with`,
pipelines, parenthesized sub-pipelines, and the functions default, trunc,
trimSuffix, printf (%s, %v), quote, toYaml, nindent, indent, eq, or, and,
not. Anything else is an error, so a template change that steps outside the
subset fails the test loudly instead of rendering wrongly.

Usage: python3 helm_render.py CHART_DIR [--values FILE] [--release NAME]
Prints the manifest (documents in template-file order, like `helm template`).
"""
import os
import re
import shlex
import sys

import yaml

TOKEN = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class TemplateError(Exception):
    pass


def tokenize(text):
    """Split into ('text', s) and ('action', s) with trimming applied."""
    out, pos = [], 0
    for m in TOKEN.finditer(text):
        out.append(["text", text[pos:m.start()]])
        out.append(["action", m.group(2), m.group(1) == "-", m.group(3) == "-"])
        pos = m.end()
    out.append(["text", text[pos:]])
    for i, t in enumerate(out):
        if t[0] != "action":
            continue
        if t[2] and i > 0:
            out[i - 1][1] = out[i - 1][1].rstrip(" \t\r\n")
        if t[3] and i + 1 < len(out):
            out[i + 1][1] = out[i + 1][1].lstrip(" \t\r\n")
    return [(t[0], t[1]) for t in out if t[0] == "action" or t[1]]


def parse(tokens, i=0, stop=("end",)):
    """Tokens to a tree: ('text', s) | ('expr', e) | ('if', cond, then, else)
    | ('with', e, body, else) | ('define', name, body) | ('comment',)."""
    nodes = []
    while i < len(tokens):
        kind, val = tokens[i]
        if kind == "text":
            nodes.append(("text", val))
            i += 1
            continue
        word = val.split(None, 1)[0] if val else ""
        if val.startswith("/*"):
            i += 1
            continue
        if word in stop:
            return nodes, i
        if word in ("if", "with"):
            body, j = parse(tokens, i + 1, stop=("end", "else"))
            other = []
            if tokens[j][1].strip() == "else":
                other, j = parse(tokens, j + 1, stop=("end",))
            nodes.append((word, val.split(None, 1)[1], body, other))
            i = j + 1
        elif word == "define":
            name = shlex.split(val)[1]
            body, j = parse(tokens, i + 1, stop=("end",))
            nodes.append(("define", name, body))
            i = j + 1
        else:
            nodes.append(("expr", val))
            i += 1
    return nodes, i


def truthy(v):
    return v not in (None, False, 0, "", [], {})


def to_yaml(v):
    if v in ({}, [], None):
        return ""
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def fmt_v(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Renderer:
    def __init__(self, root):
        self.root = root
        self.defines = {}

    def lookup(self, path, dot):
        """`.` is dot; `.X.y` looks X.y up in dot (Go semantics)."""
        if path == ".":
            return dot
        cur = dot
        for part in path.strip(".").split("."):
            if isinstance(cur, dict):
                cur = cur.get(part)
            else:
                return None
        return cur

    def split_args(self, s):
        """Split a command into arguments, keeping (...) and "..." whole."""
        args, cur, depth, quote = [], "", 0, False
        for ch in s:
            if quote:
                cur += ch
                if ch == '"':
                    quote = False
                continue
            if ch == '"':
                quote = True
                cur += ch
            elif ch == "(":
                depth += 1
                cur += ch
            elif ch == ")":
                depth -= 1
                cur += ch
            elif ch.isspace() and depth == 0:
                if cur:
                    args.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            args.append(cur)
        return args

    def split_pipes(self, s):
        parts, cur, depth, quote = [], "", 0, False
        for ch in s:
            if ch == '"':
                quote = not quote
            if not quote:
                depth += ch == "("
                depth -= ch == ")"
            if ch == "|" and depth == 0 and not quote:
                parts.append(cur.strip())
                cur = ""
            else:
                cur += ch
        parts.append(cur.strip())
        return parts

    def arg(self, a, dot):
        if a.startswith('"'):
            return a[1:-1]
        if a.startswith("("):
            return self.pipeline(a[1:-1], dot)
        if a.startswith("."):
            return self.lookup(a, dot)
        if re.fullmatch(r"-?\d+", a):
            return int(a)
        if a in ("true", "false"):
            return a == "true"
        raise TemplateError(f"unsupported argument {a!r}")

    def call(self, name, a):
        """Call a function on evaluated arguments."""
        if name == "include":
            return self.render_nodes(self.defines[a[0]], a[1])
        if name == "default":
            return a[1] if truthy(a[1]) else a[0]
        if name == "trunc":
            return str(a[1])[: a[0]]
        if name == "trimSuffix":
            s = str(a[1])
            return s[: -len(a[0])] if a[0] and s.endswith(a[0]) else s
        if name == "printf":
            vals = list(a[1:])
            return re.sub(r"%[sv]", lambda m: fmt_v(vals.pop(0)), a[0])
        if name == "quote":
            return '"' + fmt_v(a[0]).replace('"', '\\"') + '"'
        if name == "toYaml":
            return to_yaml(a[0])
        if name in ("nindent", "indent"):
            pad = " " * a[0]
            body = "\n".join(pad + l if l else l for l in str(a[1]).split("\n"))
            return ("\n" + body) if name == "nindent" else body
        if name == "eq":
            return a[0] == a[1]
        if name == "or":
            return next((x for x in a if truthy(x)), a[-1])
        if name == "and":
            return next((x for x in a if not truthy(x)), a[-1])
        if name == "not":
            return not truthy(a[0])
        raise TemplateError(f"unsupported function {name!r}")

    def pipeline(self, expr, dot):
        value = None
        for k, cmd in enumerate(self.split_pipes(expr)):
            words = self.split_args(cmd)
            head, rest = words[0], words[1:]
            if head[0] in '."(' or re.fullmatch(r"-?\d+|true|false", head):
                if rest or k > 0:
                    raise TemplateError(f"unsupported expression {cmd!r}")
                value = self.arg(head, dot)
            else:
                vals = [self.arg(x, dot) for x in rest]
                if k > 0:
                    vals.append(value)
                value = self.call(head, vals)
        return value

    def render_nodes(self, nodes, dot):
        out = []
        for n in nodes:
            if n[0] == "text":
                out.append(n[1])
            elif n[0] == "define":
                self.defines[n[1]] = n[2]
            elif n[0] == "expr":
                v = self.pipeline(n[1], dot)
                out.append("" if v is None else fmt_v(v))
            elif n[0] == "if":
                out.append(self.render_nodes(n[2] if truthy(self.pipeline(n[1], dot)) else n[3], dot))
            elif n[0] == "with":
                v = self.pipeline(n[1], dot)
                out.append(self.render_nodes(n[2], v) if truthy(v) else self.render_nodes(n[3], dot))
        return "".join(out)


def render(chart, values_file=None, release="demo"):
    with open(os.path.join(chart, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    with open(values_file or os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f)
    root = {
        "Values": values,
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
    }
    r = Renderer(root)
    tdir = os.path.join(chart, "templates")
    names = sorted(os.listdir(tdir))
    for n in names:
        if n.endswith(".tpl"):
            with open(os.path.join(tdir, n)) as f:
                r.render_nodes(parse(tokenize(f.read()))[0], root)
    docs = []
    for n in names:
        if not n.endswith(".yaml"):
            continue
        with open(os.path.join(tdir, n)) as f:
            text = r.render_nodes(parse(tokenize(f.read()))[0], root)
        if text.strip():
            docs.append(f"---\n# Source: {meta['name']}/templates/{n}\n{text.strip()}\n")
    return "".join(docs)


if __name__ == "__main__":
    args = sys.argv[1:]
    chart = args[0]
    values = args[args.index("--values") + 1] if "--values" in args else None
    release = args[args.index("--release") + 1] if "--release" in args else "demo"
    sys.stdout.write(render(chart, values, release))
