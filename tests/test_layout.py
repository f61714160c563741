"""The layout's rules, read from the source with ast and tokenize: what src/ holds, who imports whom
(deferred imports inside functions included), the sizes, the type hints of the exercise and the spelling.

Nothing here runs the code it reads, so a rule broken anywhere fails at once, with the place.
"""

import ast
import io
import re
import tokenize

import pytest

from iml.common import ROOT

SRC = ROOT / "src"
EXERCISE_SCRIPTS = ("input_opt", "mnist_integrated", "deepfake_interpretation")
EXERCISE = (*EXERCISE_SCRIPTS, "util", "models")
# Line limits: each exercise script and util.py, models.py, each file of the package, each function, each batch file.
SCRIPT_LINES, MODELS_LINES, PACKAGE_LINES, FUNCTION_LINES, SLURM_LINES = 250, 150, 400, 40, 30


def module_files():
    """{module name: path} of every module in src/ and src/iml/."""
    files = {path.stem: path for path in sorted(SRC.glob("*.py"))}
    for path in sorted((SRC / "iml").glob("*.py")):
        files["iml" if path.stem == "__init__" else f"iml.{path.stem}"] = path
    return files


MODULES = module_files()


def parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def line_count(path):
    return len(path.read_text().splitlines())


class Imports(ast.NodeVisitor):
    """Every import of a module as (imported module, line, deferred), deferred meaning inside a function.

    `from iml import cli` counts as importing iml and iml.cli; `import iml.cli` as both as well, since
    Python runs the package's __init__ first. Relative imports are resolved against the package.
    """

    def __init__(self, name):
        self.name, self.depth, self.found = name, 0, []
        self.package = name.rsplit(".", 1)[0] if "." in name else ("iml" if name == "iml" else "")

    def add(self, module, node):
        parts = module.split(".")
        for end in range(1, len(parts) + 1):
            self.found.append((".".join(parts[:end]), node.lineno, self.depth > 0))

    def visit_Import(self, node):
        for alias in node.names:
            self.add(alias.name, node)

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join(part for part in [*anchor, base] if part)
        self.add(base, node)
        for alias in node.names:
            if f"{base}.{alias.name}" in MODULES:
                self.add(f"{base}.{alias.name}", node)

    def visit_Call(self, node):
        """importlib.import_module("name") and __import__("name") with a literal name count too."""
        function = node.func
        called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if called in ("import_module", "__import__") and isinstance(literal, str):
            self.add(literal, node)
        self.generic_visit(node)

    def visit_function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_function


def project_imports(name):
    """The project modules `name` imports, as (module, line, deferred), itself left out."""
    visitor = Imports(name)
    visitor.visit(parse(MODULES[name]))
    return [
        (module, line, deferred) for module, line, deferred in visitor.found if module in MODULES and module != name
    ]


def where(name, line):
    return f"{MODULES[name].relative_to(ROOT)}:{line}"


def test_src_holds_exactly_the_exercise_and_the_package():
    # Python's caches and the metadata of `pip install -e .` are made by tools, not part of the layout.
    entries = {
        path.name for path in SRC.iterdir() if path.name != "__pycache__" and not path.name.endswith(".egg-info")
    }
    assert entries == {f"{name}.py" for name in EXERCISE} | {"iml"}
    assert (SRC / "iml" / "__init__.py").is_file()


def described(name, imports):
    """One line per import statement, naming the deepest module it imports."""
    deepest = {}
    for module, line, _ in imports:
        if len(module) > len(deepest.get(line, "")):
            deepest[line] = module
    return [f"{where(name, line)} imports {module}" for line, module in sorted(deepest.items())]


@pytest.mark.parametrize("name", EXERCISE_SCRIPTS)
def test_exercise_script_imports_only_util_and_models_at_module_level(name):
    """The module body (if-blocks and try-blocks included) imports from the project only util and models."""
    eager = [found for found in project_imports(name) if not found[2] and found[0] not in ("util", "models")]
    assert not eager, "\n".join(described(name, eager))


@pytest.mark.parametrize("name", [name for name in MODULES if name.split(".")[0] == "iml"])
def test_iml_never_imports_an_exercise_script(name):
    """Not even inside a function: the exercise stands on its own, and iml builds on it."""
    wrong = [found for found in project_imports(name) if found[0] in EXERCISE_SCRIPTS]
    assert not wrong, "\n".join(described(name, wrong))


def test_no_command_runs_an_exercise_script():
    from iml.__main__ import COMMANDS

    assert not {module for module, _ in COMMANDS.values()} & set(EXERCISE_SCRIPTS)


@pytest.mark.parametrize("name", ["util", "models"])
def test_util_and_models_import_iml_only_inside_functions(name):
    eager = [found for found in project_imports(name) if not found[2]]
    assert not eager, "\n".join(described(name, eager))


def import_cycles(graph):
    """The strongly connected components of more than one module, or of one that imports itself (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_src_modules_deferred_imports_included():
    graph = {name: set() for name in MODULES}
    lines = {}
    for name in MODULES:
        for module, line, _ in project_imports(name):
            graph[name].add(module)
            lines.setdefault((name, module), line)
    cycles = import_cycles(graph)
    described = [
        " ; ".join(f"{where(a, lines[a, b])} imports {b}" for a in cycle for b in sorted(graph[a]) if b in cycle)
        for cycle in cycles
    ]
    assert not cycles, "\n".join(described)


def size_limit(name):
    if name.startswith("iml"):
        return PACKAGE_LINES
    return MODELS_LINES if name == "models" else SCRIPT_LINES


@pytest.mark.parametrize("name", MODULES)
def test_file_sizes(name):
    lines = line_count(MODULES[name])
    assert lines <= size_limit(name), f"{MODULES[name].relative_to(ROOT)} has {lines} lines; at most {size_limit(name)}"


def test_every_function_in_src_is_at_most_40_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES:
                    long.append(f"{where(name, node.lineno)} {node.name}: {lines} lines")
    assert not long, f"functions over {FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_every_batch_file_is_at_most_30_lines():
    files = sorted((ROOT / "scripts").glob("*.slurm"))
    assert len(files) == 3
    long = [f"{path.name}: {line_count(path)} lines" for path in files if line_count(path) > SLURM_LINES]
    assert not long, long


def missing_hints(function):
    """The parameters of `function` without an annotation (self and cls aside), and 'return' if it has none."""
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    missing = [a.arg for a in every if a is not None and a.annotation is None and a.arg not in ("self", "cls")]
    return missing + (["return"] if function.returns is None else [])


def test_missing_hints_are_found():
    function = ast.parse("def f(self, a: int, b, *c, d=1, **e) -> None: pass").body[0]
    assert missing_hints(function) == ["b", "d", "c", "e"]
    assert missing_hints(ast.parse("def g(a: int) -> int: return a").body[0]) == []


@pytest.mark.parametrize("name", EXERCISE)
def test_every_signature_of_the_exercise_has_type_hints(name):
    unhinted = [
        f"{where(name, node.lineno)} {node.name}: {', '.join(missing_hints(node))}"
        for node in ast.walk(parse(MODULES[name]))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and missing_hints(node)
    ]
    assert not unhinted, "signatures without type hints:\n" + "\n".join(unhinted)


# British -is- and -our/-re forms of words PyTorch, numpy and the course spell the American way.
BRITISH = re.compile(
    r"optimis|synchronis|finalis|normalis|parametris|regularis|randomis|standardis|initialis|minimis|maximis"
    r"|visualis|summaris|serialis|vectoris|materialis|specialis|stabilis|tokenis|quantis|generalis|equalis"
    r"|discretis|binaris|recognis|categoris|colour|centre|behaviour|favour",
    re.IGNORECASE,
)


def names(path):
    """(line, identifier) of every NAME token of a Python file: code, not strings or comments."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(token.start[0], token.string) for token in tokens if token.type == tokenize.NAME]


def test_british_names_are_found(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def optimise(colour_map):  # optimise\n    return "normalise"\n')
    assert [text for _, text in names(sample) if BRITISH.search(text)] == ["optimise", "colour_map"]


def test_identifiers_use_pytorchs_spelling():
    files = [path for folder in ("src", "tests", "bench") for path in sorted((ROOT / folder).rglob("*.py"))]
    british = [
        f"{path.relative_to(ROOT)}:{line} {text}"
        for path in files
        for line, text in names(path)
        if BRITISH.search(text)
    ]
    assert not british, "identifiers in British spelling:\n" + "\n".join(british)
