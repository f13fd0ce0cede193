"""Writing the generated OpenAPI documents (tenant API and admin API)."""

import sys
from collections.abc import Callable

import yaml


class _Dumper(yaml.SafeDumper):
    """Emit shared sub-schemas in full instead of YAML anchors."""

    def ignore_aliases(self, data):
        return True


def dump(document: dict) -> str:
    """The document as YAML text, stable across runs."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, width=79, allow_unicode=False)


def write_main(render: Callable[[], str], argv: list[str] | None) -> int:
    """Write ``render()`` to the file named in ``argv`` (default stdout)."""
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv:
        with open(argv[0], 'w', encoding='utf-8') as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
