"""Generate the configuration reference pages (docs/reference/*.md) from the Pydantic schemas.

Run before ``mkdocs build`` (the ``nox -s docs`` session does): ``python docs/gen_config_reference.py``.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

OUT = Path(__file__).parent / "reference"


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{arg}`" for arg in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pathlib.", "").replace("|", "\\|")


def _rows(model: BaseModel, prefix: str = "") -> list[str]:
    rows = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(_rows(value, f"{path}."))
            continue
        default = f"`{value!s}`" if value is not None else "—"
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_name(info.annotation)} | {default} | {description} |")
    return rows


def _page(title: str, intro: str, config: BaseModel) -> str:
    lines = [f"# {title}", "", intro, "", "| field | type | default | description |", "|---|---|---|---|"]
    lines.extend(_rows(config))
    return "\n".join(lines) + "\n"


def main() -> None:
    from radiossl import registry
    from radiossl.config import build_config
    from radiossl.pretext.base import get_method, pretrain_config_class

    OUT.mkdir(exist_ok=True)
    written = []
    builtin = {(info.group, info.name) for info in registry.list_plugins(load=False) if info.distribution == "radiossl"}
    for name in registry.names("radiossl.pretext"):
        if ("radiossl.pretext", name) not in builtin:
            continue  # document radiossl's own methods only, not whatever plugins are installed
        method = get_method(name)
        defaults = {**method.default_settings(), "method": {"name": name}}
        config = build_config(pretrain_config_class(method), [defaults])
        intro = (
            f"Every field of `radiossl pretrain --method {name}` (generated from the schema; "
            f"`radiossl config show --method {name}` prints the same as YAML)."
        )
        (OUT / f"pretrain-{name}.md").write_text(_page(f"Config reference: pretrain {name}", intro, config))
        written.append(f"pretrain-{name}.md")
    from radiossl.downstream.config import task_config_class

    for name in registry.names("radiossl.tasks"):
        if ("radiossl.tasks", name) not in builtin:
            continue
        for stage in ("finetune", "evaluate"):
            config_class, defaults = task_config_class(name, stage)
            config = build_config(config_class, [defaults])
            intro = f"Every field of `radiossl {stage} --task {name}` (generated from the schema)."
            (OUT / f"{stage}-{name}.md").write_text(_page(f"Config reference: {stage} {name}", intro, config))
            written.append(f"{stage}-{name}.md")
    index = ["# Configuration reference", ""] + [f"* [{page[:-3]}]({page})" for page in written]
    (OUT / "index.md").write_text("\n".join(index) + "\n")
    print(f"wrote {len(written)} pages to {OUT}")


if __name__ == "__main__":
    main()
