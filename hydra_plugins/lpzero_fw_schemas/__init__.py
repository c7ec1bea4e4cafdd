"""Hydra calls this before composing lpzero_fw's config: it stores the components' typed
option schemas (``lpzero_fw.registry.store_schemas``) that the config files extend."""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class LPZeroFWSchemas(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # only for lpzero_fw's own config: other Hydra apps in the environment are left alone
        if any(str(element.path or "").rstrip("/").endswith("lpzero_fw/conf") for element in search_path.get_path()):
            from lpzero_fw.registry import store_schemas

            store_schemas()
