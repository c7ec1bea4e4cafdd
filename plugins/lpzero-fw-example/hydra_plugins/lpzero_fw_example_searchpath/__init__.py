"""Adds the example plugin's configs to Hydra's search path (``strategy=example_quick``)."""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class LPZeroFWExampleSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="lpzero-fw-example", path="pkg://lpzero_fw_example.conf")
