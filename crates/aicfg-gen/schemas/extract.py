#!/usr/bin/env python3
"""Extract the argument definitions aicfg's generated files must satisfy from a framework's
own release (a PyPI wheel), as small JSON snapshots under crates/aicfg-gen/schemas/.

The framework's real argparse parser is built and read: the wheel is unpacked, its package is
imported with every dependency it cannot find (torch, CUDA libraries, ...) replaced by inert
stand-ins, and the parser its CLI entry builds is captured. So flags, types, choices and
aliases are the release's own, including flags added by helpers or generated from dataclasses.

Usage (see README.md next to this file):
  extract.py pins    ai_dynamo-X.whl                      # framework pins of a Dynamo release
  extract.py sglang  sglang-X.whl          OUT.json       # ServerArgs.add_cli_args
  extract.py vllm    vllm-X.whl            OUT.json       # EngineArgs.add_cli_args
  extract.py dynamo  ai_dynamo-X.whl BACKEND OUT.json     # dynamo.<backend> worker parser
                                                          # (BACKEND frontend: dynamo.frontend)
  extract.py aiperf  aiperf-X.whl          OUT.json       # `aiperf profile` flags
  extract.py trtllm  llm_args.py COMMIT     OUT.json      # TorchLlmArgs fields (read with ast)

Needs only the Python standard library plus msgspec and pydantic (real dependencies of the
parsers' own modules): `pip install msgspec pydantic packaging`.
"""
import abc
import ast
import argparse
import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import tempfile
import types
import zipfile


class _Meta(abc.ABCMeta):
    def __getattr__(cls, n):
        if n.startswith("__"):
            raise AttributeError(n)
        return _Inert()

    def __getitem__(cls, k):
        return cls

    def __or__(cls, o):
        return cls

    def __ror__(cls, o):
        return cls


class _Inert(metaclass=_Meta):
    """Stands for anything a missing module would have provided."""

    def __init_subclass__(cls, **kw):
        pass

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        # A stand-in used as a field type validates anything.
        from pydantic_core import core_schema

        return core_schema.any_schema()

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        # Decorators from stand-in modules hand back what they decorate.
        if len(a) == 1 and not k and (isinstance(a[0], type) or callable(a[0])):
            return a[0]
        return _Inert()

    def __getattr__(self, n):
        if n.startswith("__"):
            raise AttributeError(n)
        return _Inert()

    def __getitem__(self, k):
        return _Inert()

    def __setitem__(self, k, v):
        pass

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False

    def __int__(self):
        return 0

    def __index__(self):
        return 0

    def __float__(self):
        return 0.0

    def __lt__(self, o):
        return False

    def __gt__(self, o):
        return False

    def __le__(self, o):
        return True

    def __ge__(self, o):
        return True

    def __eq__(self, o):
        return isinstance(o, _Inert)

    def __hash__(self):
        return 0

    def __add__(self, o):
        return self

    __radd__ = __mul__ = __or__ = __ror__ = __add__

    def __str__(self):
        return "inert"

    def __len__(self):
        return 0

    def __contains__(self, x):
        return False

    def __mro_entries__(self, bases):
        return (_Inert,)


# Device namespaces a parser probes with hasattr(torch, ...): absent, as on a CUDA build.
ABSENT_ATTRS = {"npu", "xpu", "hpu", "musa", "mlu"}


class _InertModule(types.ModuleType):
    __path__ = []
    __version__ = "2.9.0"

    def __getattr__(self, name):
        if (name.startswith("__") and name.endswith("__")) or name in ABSENT_ATTRS:
            raise AttributeError(name)
        v = _Inert()
        setattr(self, name, v)
        return v


# Accelerator stacks a parser probes for: they must look absent, as on a plain x86 host.
ABSENT = {
    "torch_npu", "habana_frameworks", "torch_xla", "intel_extension_for_pytorch",
    "torch_musa", "vllm_ascend", "mindspore", "tpu_inference", "mlx", "neuronx_distributed",
    "transformers_neuronx", "torch_neuronx", "amdsmi", "aiter",
    # Windows-only standard modules: the host is Linux.
    "_winapi", "msvcrt", "winreg", "_overlapped", "nt", "winsound", "_msi",
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Real modules where they exist (the unpacked wheel, stdlib, msgspec, pydantic);
    an inert module for anything else."""

    def __init__(self, real=()):
        self.real = set(real)

    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in ABSENT:
            return None
        parent = sys.modules.get(name.rpartition(".")[0]) if "." in name else None
        # A real installed package's missing submodule stays missing (it probes for it);
        # the extracted package's companions (e.g. dynamo._core) become stand-ins.
        if parent is not None and not isinstance(parent, _InertModule) and top not in self.real:
            return None
        for f in sys.meta_path:
            if f is self:
                continue
            try:
                if f.find_spec(name, path, target) is not None:
                    return None
            except Exception:
                pass
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        return _InertModule(spec.name)

    def exec_module(self, m):
        pass


def fake_missing_distributions():
    """Packages that are stand-ins have no metadata: report a recent version for them."""
    import importlib.metadata as md

    real = md.version

    def version(name):
        try:
            return real(name)
        except md.PackageNotFoundError:
            return "99.0.0"

    md.version = version


def unpack(wheel, prefixes):
    d = tempfile.mkdtemp(prefix="aicfg-schema-")
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            if n.endswith(".py") and any(n.startswith(p) for p in prefixes):
                z.extract(n, d)
    sys.path.insert(0, d)
    return d


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def type_name(t):
    if t is None:
        return None
    if t in (int, float, str, bool):
        return t.__name__
    n = getattr(t, "__name__", None) or type(t).__name__
    return n


def describe(parser):
    """Every option of a parser: value kind, choices, nargs."""
    out = {}
    for a in parser._actions:
        if not a.option_strings or isinstance(a, argparse._HelpAction):
            continue
        takes_value = a.nargs != 0
        choices = None
        if a.choices is not None:
            try:
                choices = sorted({str(c) for c in a.choices})
            except TypeError:
                choices = None
        entry = {
            "type": type_name(a.type) if takes_value else "flag",
            "takes_value": takes_value,
        }
        if choices:
            entry["choices"] = choices
        if a.nargs not in (None, 0):
            entry["nargs"] = str(a.nargs)
        for o in a.option_strings:
            if o.startswith("--"):
                out[o] = entry
    return dict(sorted(out.items()))


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


def capture_parse(fn):
    """Run a CLI entry until it parses its arguments; return the parser it built."""
    orig = argparse.ArgumentParser.parse_known_args

    def grab(self, *a, **k):
        raise _Captured(self)

    argparse.ArgumentParser.parse_known_args = grab
    try:
        fn()
    except _Captured as c:
        return c.parser
    finally:
        argparse.ArgumentParser.parse_known_args = orig
    raise SystemExit("the entry returned without parsing arguments")


def write(out, tool, version, wheel, flags, extra=None):
    doc = {
        "tool": tool,
        "version": version,
        "source": f"{os.path.basename(wheel)} (PyPI) sha256 {sha256(wheel)}",
        "extracted_by": "crates/aicfg-gen/schemas/extract.py",
        "flags": flags,
    }
    if extra:
        doc.update(extra)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"{out}: {len(flags)} flags")


def _literal_aliases(config_dir):
    """`Name = Literal[...]` aliases of vllm/config/*.py: name -> choices."""
    import ast

    out = {}
    for fn in sorted(os.listdir(config_dir)):
        if not fn.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(config_dir, fn)).read())
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                val = node.value
                if (
                    isinstance(target, ast.Name)
                    and isinstance(val, ast.Subscript)
                    and getattr(val.value, "id", "") == "Literal"
                ):
                    elts = val.slice.elts if isinstance(val.slice, ast.Tuple) else [val.slice]
                    vals = [e.value for e in elts if isinstance(e, ast.Constant)]
                    out[target.id] = sorted(str(v) for v in vals)
    return out


def vllm_flags(root):
    """vLLM builds its engine parser from config dataclasses whose defaults need torch, so
    it is read statically: every option string `add_argument` registers in
    vllm/engine/arg_utils.py, typed by the EngineArgs field it sets (bool fields are
    BooleanOptionalAction: `--x` and `--no-x`; `Literal` aliases give the choices)."""
    import ast

    src = open(os.path.join(root, "vllm/engine/arg_utils.py")).read()
    tree = ast.parse(src)
    aliases = _literal_aliases(os.path.join(root, "vllm/config"))
    fields = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "EngineArgs":
            for st in node.body:
                if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
                    fields[st.target.id] = ast.unparse(st.annotation)
    flags = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
            continue
        names = [
            a.value
            for a in node.args
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")
        ]
        if not names:
            continue
        dest = names[0][2:].replace("-", "_")
        ann = fields.get(dest, "")
        words = set(re.findall(r"[A-Za-z_]+", ann))
        entry = {"type": None, "takes_value": True}
        if ann.replace(" ", "") in ("bool", "bool|None", "Optional[bool]"):
            entry = {"type": "flag", "takes_value": False}
        elif "int" in words and not ({"list", "str", "dict"} & words):
            entry["type"] = "int"
        elif "float" in words and not ({"list", "str", "dict"} & words):
            entry["type"] = "float"
        elif "list" in words:
            entry["nargs"] = "+"
        elif "Config" in ann or "dict" in words:
            entry["type"] = "json"
        for w in words:
            if w in aliases and aliases[w]:
                entry["choices"] = aliases[w]
                entry["type"] = "str"
        for n in names:
            flags[n] = entry
            if entry["type"] == "flag" and n.startswith("--") and not n.startswith("--no-"):
                flags["--no-" + n[2:]] = entry
    return dict(sorted(flags.items()))


def wheel_version(wheel):
    return os.path.basename(wheel).split("-")[1]


# ---------------------------------------------------------------- TensorRT-LLM LLM API (static)
# The LLM-API arguments are pydantic models in tensorrt_llm/llmapi/llm_args.py. Importing that
# module needs torch and the compiled bindings, so the fields are read from the source with
# `ast`: every class-level annotated field, its type (Literal choices, enums, nested models,
# unions and aliases resolved within the file), and the `status=` / `deprecated=` / `init=False`
# marks of its Field(...). Methods and validators are not read.

_INT = {"int", "NonNegativeInt", "PositiveInt", "StrictInt"}
_FLOAT = {"float", "NonNegativeFloat"}
_LIST = {"List", "list", "Set", "set", "Tuple", "tuple"}
_DICT = {"Dict", "dict"}


class _TrtModule:
    def __init__(self, tree):
        self.classes = {}
        self.aliases = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.aliases[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.aliases[node.target.id] = node.value

    def enum_values(self, name):
        c = self.classes.get(name)
        if c is None or not any(_name(b) in ("Enum", "StrEnum", "IntEnum") for b in c.bases):
            return None
        out = []
        for st in c.body:
            if isinstance(st, ast.Assign) and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str):
                out.append(st.value.value)
        return out

    def is_model(self, name):
        return name in self.classes and self.enum_values(name) is None

    def fields(self, name, seen=()):
        """Fields of a model class, bases first (a subclass redefines a field in place)."""
        c = self.classes[name]
        out = {}
        for b in c.bases:
            bn = _name(b)
            if bn in self.classes and bn not in seen and self.is_model(bn):
                out.update(self.fields(bn, seen + (name,)))
        for st in c.body:
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
                n = st.target.id
                if n.startswith("_") or n == "model_config" or _name(st.annotation) == "ClassVar":
                    continue
                if isinstance(st.value, ast.Call) and _name(st.value.func) == "PrivateAttr":
                    continue
                out[n] = st
        return out


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    if isinstance(node, ast.Call):
        return _name(node.func)
    return None


def _args(sub):
    s = sub.slice
    return list(s.elts) if isinstance(s, ast.Tuple) else [s]


def _kinds(mod, ann, depth=0):
    """The alternatives a value may take: ('int'|'float'|'str'|'bool'|'list'|'object', choices or
    None, model class or None). Unknown names (imported types) are opaque objects."""
    if depth > 20:
        return [("object", None, None)]
    if isinstance(ann, ast.Constant):
        if ann.value is None:
            return []
        if isinstance(ann.value, str):  # a quoted annotation
            return _kinds(mod, ast.parse(ann.value, mode="eval").body, depth + 1)
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        return _kinds(mod, ann.left, depth + 1) + _kinds(mod, ann.right, depth + 1)
    n = _name(ann)
    if isinstance(ann, ast.Subscript):
        if n in ("Optional", "Union"):
            return [k for a in _args(ann) for k in _kinds(mod, a, depth + 1)]
        if n == "Annotated":
            return _kinds(mod, _args(ann)[0], depth + 1)
        if n == "Literal":
            vals = [a.value for a in _args(ann) if isinstance(a, ast.Constant)]
            if all(isinstance(v, bool) for v in vals):
                return [("bool", None, None)]
            if all(isinstance(v, str) for v in vals):
                return [("str", vals, None)]
            return [("int", None, None)]
        if n in _LIST:
            return [("list", None, None)]
        if n in _DICT:
            return [("object", None, None)]
        return [("object", None, None)]
    if n in _INT:
        return [("int", None, None)]
    if n in _FLOAT:
        return [("float", None, None)]
    if n == "str" or n == "Path":
        return [("str", None, None)]
    if n == "bool":
        return [("bool", None, None)]
    if n in _LIST:
        return [("list", None, None)]
    if n in _DICT:
        return [("object", None, None)]
    if n in mod.classes:
        ev = mod.enum_values(n)
        if ev is not None:
            return [("str", ev, None)]
        return [("object", None, n)]
    if n in mod.aliases:
        return _kinds(mod, mod.aliases[n], depth + 1)
    return [("object", None, None)]


def _marks(st):
    out = {}
    if isinstance(st.value, ast.Call) and _name(st.value.func) == "Field":
        for kw in st.value.keywords:
            if kw.arg == "status" and isinstance(kw.value, ast.Constant):
                out["status"] = kw.value.value
            elif kw.arg == "deprecated" and isinstance(kw.value, ast.Constant) and kw.value.value:
                out["deprecated"] = True
            elif kw.arg == "init" and isinstance(kw.value, ast.Constant) and kw.value.value is False:
                out["init"] = False
    return out


def trtllm_fields(source, root="TorchLlmArgs"):
    mod = _TrtModule(ast.parse(source))
    out = {}

    def walk(cls, prefix, stack):
        for name, st in mod.fields(cls).items():
            key = prefix + name
            kinds = _kinds(mod, st.annotation)
            types = []
            choices = []
            models = []
            for t, ch, m in kinds:
                if t not in types:
                    types.append(t)
                if ch:
                    choices.extend(c for c in ch if c not in choices)
                if m and m not in models:
                    models.append(m)
            entry = {"type": types[0] if len(types) == 1 else types}
            # Choices only bind a pure string field (a bool | "auto" field keeps its bool).
            if choices and types == ["str"]:
                entry["choices"] = choices
            entry.update(_marks(st))
            prev = out.get(key)
            if prev is not None and prev != entry:
                # The same key in several union members: merge.
                pt = prev["type"] if isinstance(prev["type"], list) else [prev["type"]]
                nt = entry["type"] if isinstance(entry["type"], list) else [entry["type"]]
                merged = dict(prev)
                ts = pt + [t for t in nt if t not in pt]
                merged["type"] = ts[0] if len(ts) == 1 else ts
                if "choices" in prev or "choices" in entry:
                    ch = list(prev.get("choices", []))
                    ch += [c for c in entry.get("choices", []) if c not in ch]
                    merged["choices"] = ch
                entry = merged
            out[key] = entry
            for m in models:
                if m not in stack:
                    walk(m, key + ".", stack + (m,))

    walk(root, "", (root,))
    return dict(sorted(out.items()))


def main():
    cmd = sys.argv[1]
    if cmd == "pins":
        with zipfile.ZipFile(sys.argv[2]) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            for line in z.read(meta).decode().splitlines():
                m = re.match(r"Requires-Dist: (vllm|sglang|tensorrt-llm)(\[[^\]]*\])?==(\S+);", line)
                if m:
                    print(m.group(1), m.group(3))
        return
    if cmd == "sglang":
        wheel, out = sys.argv[2:4]
        unpack(wheel, ["sglang/"])
        sys.meta_path.append(_Finder(["sglang"]))
        from sglang.srt.server_args import ServerArgs

        p = argparse.ArgumentParser()
        ServerArgs.add_cli_args(p)
        write(out, "sglang", wheel_version(wheel), wheel, describe(p))
    elif cmd == "vllm":
        wheel, out = sys.argv[2:4]
        d = unpack(wheel, ["vllm/"])
        write(out, "vllm", wheel_version(wheel), wheel, vllm_flags(d))
    elif cmd == "dynamo":
        wheel, backend, out = sys.argv[2:5]
        unpack(wheel, ["dynamo/"])
        sys.meta_path.append(_Finder(["dynamo"]))
        import importlib

        # The frontend builds its parser in main.py; the workers in args.py.
        module = "main" if backend == "frontend" else "args"
        args = importlib.import_module(f"dynamo.{backend}.{module}")
        entry = next(
            getattr(args, n)
            for n in ("parse_args", "cmd_line_args", "parse_arguments")
            if hasattr(args, n)
        )
        sys.argv = [f"dynamo.{backend}"]
        import inspect

        takes_args = any(
            x.default is inspect.Parameter.empty
            for x in inspect.signature(entry).parameters.values()
        )
        def call():
            r = entry([]) if takes_args else entry()
            if inspect.iscoroutine(r):
                import asyncio

                asyncio.run(r)

        p = capture_parse(call)
        # Only Dynamo's own options: the framework's are in that framework's snapshot.
        write(out, f"dynamo.{backend}", wheel_version(wheel), wheel, describe(p))
    elif cmd == "trtllm":
        # extract.py trtllm tensorrt_llm/llmapi/llm_args.py COMMIT OUT.json
        src, commit, out = sys.argv[2:5]
        with open(src) as f:
            text = f.read()
        fields = trtllm_fields(text)
        doc = {
            "tool": "tensorrt_llm LLM API (TorchLlmArgs and nested configs)",
            "version": "main",
            "source": f"tensorrt_llm/llmapi/llm_args.py of github.com/NVIDIA/TensorRT-LLM at commit {commit}",
            "extracted_by": "crates/aicfg-gen/schemas/extract.py trtllm (ast: class-level field declarations)",
            "fields": fields,
        }
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"{out}: {len(fields)} fields")
    elif cmd == "aiperf":
        wheel, out = sys.argv[2:4]
        d = unpack(wheel, ["aiperf/"])
        flags = {}
        # aiperf declares its CLI with cyclopts `Parameter(name=(...))` on config fields.
        for root, _, files in os.walk(os.path.join(d, "aiperf")):
            for fn in files:
                if not fn.endswith(".py"):
                    continue
                src = open(os.path.join(root, fn)).read()
                for m in re.finditer(r'"(--[a-z][a-z0-9-]+)"', src):
                    flags[m.group(1)] = {"type": None, "takes_value": None}
        write(out, "aiperf", wheel_version(wheel), wheel, dict(sorted(flags.items())))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
