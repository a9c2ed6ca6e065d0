"""The pieces of recipe isolation that need no TensorFlow: retrying without oneDNN, configs on their way to a child."""

from __future__ import annotations

import collections

import pytest

from tfdeploy.compression import CompressConfig
from tfdeploy.compression.isolation import config_from_json, config_to_json, isolation_blocker
from tfdeploy.measure.processes import ChildCrashed, describe_signal, onednn_enabled, surviving_onednn


def test_a_native_crash_is_retried_once_without_onednn_and_named():
    calls = []

    def crashes_with_onednn(env):
        calls.append(dict(env))
        if env.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            raise ChildCrashed("killed", "SIGSEGV")
        return "served"

    assert surviving_onednn(crashes_with_onednn, {"LD_PRELOAD": "x"}) == (
        "served", "rerun without oneDNN after SIGSEGV: it crashed with TensorFlow's oneDNN CPU kernels on")
    assert calls == [{"LD_PRELOAD": "x"}, {"LD_PRELOAD": "x", "TF_ENABLE_ONEDNN_OPTS": "0"}]

    def always(env):
        raise ChildCrashed("killed", "SIGABRT")

    with pytest.raises(ChildCrashed):
        surviving_onednn(always)
    with pytest.raises(ChildCrashed):  # oneDNN already off: nothing to retry
        surviving_onednn(lambda env: always(env), {"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert surviving_onednn(lambda env: 1) == (1, None)


def test_signals_and_the_onednn_setting_read_as_people_say_them():
    assert describe_signal(11) == "SIGSEGV (a segmentation fault)"
    assert describe_signal(9) == "SIGKILL (a kill (most often the kernel's out-of-memory killer))"
    assert onednn_enabled({}) and not onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert not onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "false"})


def test_custom_objects_travel_by_module_path_and_main_ones_keep_the_run_here(tmp_path):
    config = CompressConfig("m.keras", tmp_path, recipes="strip,ptq-int8", metrics=("auc@click",),
                            custom_objects={"Counter": collections.Counter})
    values = config_to_json(config)
    assert values["custom_objects"] == {"Counter": "collections:Counter"}
    back = config_from_json(values, progress=None)
    assert back.custom_objects == {"Counter": collections.Counter} and back.recipes == config.recipes
    assert back.metrics == ("auc@click",) and isolation_blocker(config) is None

    class Local:  # defined in a function: not importable by a fresh process
        pass

    Local.__module__ = "__main__"
    here = CompressConfig("m.keras", tmp_path, custom_objects={"Local": Local})
    assert isolation_blocker(here) == ("custom object(s) Local are defined in __main__ (a notebook or script), not "
                                       "in a module a fresh process can import")
    from tfdeploy.model.data import Dataset

    in_memory = CompressConfig("m.keras", tmp_path, data=Dataset(x=[[0.0]]))
    assert isolation_blocker(in_memory) == "the data is an in-memory Dataset, not a path"
