"""Hydra calls this before composing lpzero_fw's config: it stores the components' typed
option schemas (``lpzero_fw.registry.store_schemas``) that the config files extend."""
import importlib.util
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def _is_lpzero_conf(path: str) -> bool:
    if path.startswith("pkg://"):
        return path[len("pkg://"):].strip("/").replace("/", ".") == "lpzero_fw.conf"
    if "://" in path and not path.startswith("file://"):
        return False
    spec = importlib.util.find_spec("lpzero_fw")  # locates the package without importing it
    if spec is None or spec.origin is None:
        return False
    ours = (Path(spec.origin).parent / "conf").resolve()  # in a checkout: the repository's conf/
    return Path(path.removeprefix("file://")).resolve() == ours


class LPZeroFWSchemas(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # only for lpzero_fw's own config: other Hydra apps in the environment are left alone
        if any(_is_lpzero_conf(str(element.path or "")) for element in search_path.get_path()):
            from lpzero_fw.registry import store_schemas

            store_schemas()
