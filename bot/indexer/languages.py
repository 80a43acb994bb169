"""Which language a file is written in, and the tree-sitter grammars that parse them."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import tree_sitter_c
import tree_sitter_cpp
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_ruby
import tree_sitter_rust
import tree_sitter_typescript
from tree_sitter import Language

TEXT = "text"

_GRAMMARS: dict[str, Callable[[], object]] = {
    "python": tree_sitter_python.language,
    "javascript": tree_sitter_javascript.language,
    "typescript": tree_sitter_typescript.language_typescript,
    "tsx": tree_sitter_typescript.language_tsx,
    "java": tree_sitter_java.language,
    "go": tree_sitter_go.language,
    "rust": tree_sitter_rust.language,
    "c": tree_sitter_c.language,
    "cpp": tree_sitter_cpp.language,
    "ruby": tree_sitter_ruby.language,
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    # Headers are parsed as C++: its grammar reads C too, and C++ headers hold inline methods.
    ".h": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".ipp": "cpp",
    ".inl": "cpp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".ru": "ruby",
}

# Text we index by line windows: other languages, configuration, scripts and documentation.
_TEXT_EXTENSION_NAMES = (
    ".md .markdown .rst .txt .adoc .yaml .yml .toml .ini .cfg .conf .properties .xml .html .htm .css .scss"
    " .sass .less .vue .svelte .sh .bash .zsh .fish .ps1 .bat .cmd .sql .graphql .gql .proto .thrift"
    " .kt .kts .scala .sc .swift .m .mm .php .cs .fs .vb .lua .pl .pm .r .jl .dart .ex .exs .erl .hrl"
    " .hs .ml .mli .clj .cljs .el .lisp .scm .groovy .gradle .tf .hcl .nix .zig .nim .v .sv .vhd"
    " .f .f90 .f95 .for .pyx .pxd .pxi .cmake .mk .dockerfile .tex .j2 .jinja .tmpl .tpl"
)
_TEXT_EXTENSIONS = frozenset(_TEXT_EXTENSION_NAMES.split())

_FILENAMES: dict[str, str] = {
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "Guardfile": "ruby",
    "Vagrantfile": "ruby",
    "Podfile": "ruby",
    "Dockerfile": TEXT,
    "Makefile": TEXT,
    "GNUmakefile": TEXT,
    "CMakeLists.txt": TEXT,
    "Jenkinsfile": TEXT,
    "Procfile": TEXT,
    "README": TEXT,
    "LICENSE": TEXT,
}


def language_for(path: str) -> str | None:
    """The language tag of a path, "text" for other known text files, None for anything else."""
    name = os.path.basename(path)
    if name in _FILENAMES:
        return _FILENAMES[name]
    ext = os.path.splitext(name)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if ext in _TEXT_EXTENSIONS or name.startswith("Dockerfile."):
        return TEXT
    return None


@functools.cache
def grammar(language: str) -> Language:
    """The tree-sitter Language of a parsed language, loaded once per process."""
    return Language(_GRAMMARS[language]())
