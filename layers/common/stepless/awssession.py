"""botocore's session and client configuration, made on first use (stepless.aws.full_client): a cold start
whose calls all take the lean path (stepless.awsclient) never imports this module or botocore's client."""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import botocore.hooks
import botocore.loaders
import botocore.session
from botocore.config import Config


@functools.cache
def config() -> Config:
    """The clients' configuration (stepless.aws's constants)."""
    from stepless import aws

    return Config(
        # total attempts (botocore's ``max_attempts`` would count retries: 1 + 3 = 4 attempts)
        retries={"total_max_attempts": aws.MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=aws.CONNECT_TIMEOUT,
        read_timeout=aws.READ_TIMEOUT,
        tcp_keepalive=True,
        # the service validates every request; botocore's client-side schema walk costs CPU on each call
        parameter_validation=False,
    )


class _PlainJSONFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's data files (service models, endpoints.json) decoded by json's C decoder alone: botocore
    asks for an OrderedDict per object, which makes the first client's creation ~25 ms slower at every
    cold start (endpoints.json: 31 ms against 14); dicts keep insertion order, and botocore uses no
    OrderedDict-only behaviour on this data."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read().decode("utf-8"))


class _Loader(botocore.loaders.Loader):
    """botocore's data loader, minus two costs of every cold start's first clients: the JSON decoding above,
    and, to check that a service name is known, a listing of every service directory (~420 of them, ~2,000
    stat calls, once per model type): here the one service's directory is looked at; an unknown name still
    gets botocore's own answer (UnknownServiceError listing the known ones)."""

    def _knows(self, service_name: str, type_name: str) -> bool:
        """What ``service_name in self.list_available_services(type_name)`` answers, for one name."""
        if not service_name or os.sep in service_name or service_name.startswith("."):
            return False
        for path in self._potential_locations(service_name, must_exist=True, is_dir=True):
            for version in os.listdir(path):
                if self.file_loader.exists(os.path.join(path, version, type_name)):
                    return True
        return False

    @botocore.loaders.instance_cache
    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        """``Loader.load_service_model`` (same steps), its known-service check made by :meth:`_knows`."""
        if not self._knows(service_name, type_name):
            return super().load_service_model(service_name, type_name, api_version)  # botocore's error
        if api_version is None:
            api_version = self.determine_latest_version(service_name, type_name)
        model = self.load_data(os.path.join(service_name, api_version, type_name))
        self._extras_processor.process(model, self._find_extras(service_name, type_name, api_version))
        return model


def _loader(session: botocore.session.Session) -> _Loader:
    """As ``botocore.loaders.create_loader`` makes the session's loader (AWS_DATA_PATH honoured)."""
    data_path = session.get_config_variable("data_path")
    extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    return _Loader(extra_search_paths=extra, file_loader=_PlainJSONFileLoader())


class _Emitter(botocore.hooks.HierarchicalEmitter):
    """botocore's event emitter, without its check that a handler accepts ``**kwargs`` for botocore's own
    handlers (``inspect.getfullargspec`` on each of the ~130 a session and its clients register, a few ms
    of every cold start; botocore's tests hold its handlers to that rule). Every other handler is checked."""

    def _verify_accept_kwargs(self, func: Any) -> Any:
        if getattr(func, "__module__", "").startswith("botocore."):
            return None
        return super()._verify_accept_kwargs(func)


@functools.cache
def session() -> botocore.session.Session:
    session = botocore.session.Session(event_hooks=_Emitter())  # as get_session(), the emitter aside
    session.register_component("data_loader", _loader(session))
    return session


