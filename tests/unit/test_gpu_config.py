"""configure_gpus against a faked TensorFlow device list (this machine has no GPU)."""

import types

import pytest

from tfdeploy import backend, runtime
from tfdeploy.errors import TfdeployError


class FakeTf:
    """Just enough of tf.config to drive configure_gpus's GPU branches."""

    def __init__(self, n_gpus, initialised=False):
        self.gpus = [types.SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(n_gpus)]
        self.initialised = initialised
        self.growth = {g.name: False for g in self.gpus}
        self.logical = {g.name: None for g in self.gpus}
        experimental = types.SimpleNamespace(set_memory_growth=self._set_growth,
                                             get_memory_growth=lambda g: self.growth[g.name])
        self.config = types.SimpleNamespace(
            list_physical_devices=lambda kind: list(self.gpus) if kind == "GPU" else [],
            experimental=experimental,
            set_logical_device_configuration=self._set_logical,
            get_logical_device_configuration=lambda g: self.logical[g.name],
            LogicalDeviceConfiguration=lambda memory_limit: types.SimpleNamespace(memory_limit=memory_limit),
        )

    def _check(self):
        if self.initialised:
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    def _set_growth(self, gpu, value):
        self._check()
        self.growth[gpu.name] = value

    def _set_logical(self, gpu, configs):
        self._check()
        self.logical[gpu.name] = configs


@pytest.fixture
def fake_tf(monkeypatch):
    def install(n_gpus, initialised=False):
        fake = FakeTf(n_gpus, initialised)
        monkeypatch.setattr(backend, "tf", lambda: fake)
        return fake

    return install


def test_growth_is_set_on_every_gpu(fake_tf):
    fake = fake_tf(3)
    report = runtime.configure_gpus(memory_growth=True)
    assert fake.growth == {g.name: True for g in fake.gpus}
    assert report.gpus == [g.name for g in fake.gpus]
    assert report.message == "Set memory_growth=True on 3 GPU(s)."
    assert not report.already_configured


def test_memory_limit_replaces_growth(fake_tf):
    fake = fake_tf(2)
    report = runtime.configure_gpus(memory_limit_mb=1024)
    assert [cfgs[0].memory_limit for cfgs in fake.logical.values()] == [1024, 1024]
    assert fake.growth == {g.name: False for g in fake.gpus}
    assert report.memory_growth is None and report.memory_limit_mb == 1024


def test_no_gpu_is_a_message_not_an_error(fake_tf):
    fake_tf(0)
    report = runtime.configure_gpus()
    assert report.gpus == []
    assert "No GPU visible to TensorFlow" in report.message


def test_already_initialised_with_same_settings_is_a_no_op(fake_tf):
    fake = fake_tf(2)
    runtime.configure_gpus(memory_growth=True)
    fake.initialised = True
    report = runtime.configure_gpus(memory_growth=True)
    assert report.already_configured
    assert "nothing changed" in report.message


def test_already_initialised_with_other_settings_says_what_to_do(fake_tf):
    fake_tf(1, initialised=True)
    with pytest.raises(TfdeployError) as info:
        runtime.configure_gpus(memory_growth=True)
    message = str(info.value)
    assert "already initialised the GPUs" in message
    assert "restart the Python process / notebook kernel" in message
    assert "Received: memory_growth=True, memory_limit_mb=None" in message


def test_bad_limit(fake_tf):
    fake_tf(1)
    with pytest.raises(TfdeployError, match="Received: memory_limit_mb=0"):
        runtime.configure_gpus(memory_limit_mb=0)
