"""The process's botocore session, with a data loader that reads only the files a client
needs, and reads them into plain dicts.

Building the first client of a process is mostly botocore reading its data: the endpoints
of every AWS service (endpoints.json, over a megabyte of JSON), then the client's service
description and endpoint rules. botocore's own loader adds two costs no client needs:

- asked for one service's model, it first lists every service it holds data for (over four
  hundred folders, each listed and searched for the kind of file asked for) only to check
  that the one asked for is among them, and does so once per kind of file (a client reads
  two);
- it parses JSON into OrderedDicts (`object_pairs_hook`), from the days when plain dicts
  kept no order: twice the work of plain dicts, which keep the same order.

`ServiceLoader` reads the same files, from the same search paths, with the same extras
applied, looking for a service's files in its own folder, into plain dicts; a service it
does not find there goes through botocore's own path, which answers as botocore does
(UnknownServiceError naming the services there are).
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import botocore.session
from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader, instance_cache

# What ServiceLoader uses of botocore's Loader besides its public interface (there since
# botocore 1.21); a botocore without them keeps its own loader.
_LOADER_PARTS = ("_find_extras", "_extras_processor")


class JsonFiles(JSONFileLoader):
    """botocore's JSONFileLoader (`file.json`, else `file.json.gz`), into plain dicts."""

    OPENERS: tuple[tuple[str, Any], ...] = ((".json", open), (".json.gz", gzip.open))

    def load_file(self, file_path: str) -> Any:
        for ext, opener in self.OPENERS:
            if os.path.isfile(file_path + ext):
                with opener(file_path + ext, "rb") as file:
                    return json.loads(file.read().decode("utf-8"))
        return None


class ServiceLoader(Loader):
    """botocore's Loader, without listing every service to load one."""

    FILE_LOADER_CLASS = JsonFiles

    @instance_cache
    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        try:
            version = api_version or self.determine_latest_version(service_name, type_name)
            model = self.load_data(os.path.join(service_name, version, type_name))
        except DataNotFoundError:
            return super().load_service_model(service_name, type_name, api_version)
        extras = self._find_extras(service_name, type_name, version)  # type: ignore[attr-defined]
        self._extras_processor.process(model, extras)  # type: ignore[attr-defined]
        return model


def new_session() -> botocore.session.Session:
    """A botocore session (as `botocore.session.get_session()` makes it) with ServiceLoader
    for its data loader, over the search paths botocore's own would have."""
    session = botocore.session.get_session()
    data_path = session.get_config_variable("data_path")
    extra = None
    if data_path is not None:  # AWS_DATA_PATH, read as botocore.loaders.create_loader does
        extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
    loader = ServiceLoader(extra_search_paths=extra)
    if all(hasattr(loader, part) for part in _LOADER_PARTS):
        session.register_component("data_loader", loader)
    return session
