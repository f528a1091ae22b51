"""HorovodTrainer without Ray: the install error, the config, the rank plan, the rendezvous
server's life cycle (real Horovod server, fake worker group)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from airflowdsl.train import horovod as hvd_mod
from airflowdsl.train.horovod import HorovodConfig, gloo_iface, require_horovod

HAS_HOROVOD = hvd_mod.horovod_problem() is None
needs_horovod = pytest.mark.skipif(not HAS_HOROVOD, reason="horovod (built for this torch) "
                                   "is not installed: bash scripts/build_horovod.sh")


def _loop() -> None:
    pass


def _assert_install_hint(message: str) -> None:
    assert "pip install 'airflowdsl[horovod]'" in message
    assert "bash scripts/build_horovod.sh" in message


def test_without_horovod_the_module_imports_and_the_constructor_says_how_to_install() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["horovod"] = None          # as if Horovod were not installed
        import airflowdsl.train
        import airflowdsl.train.horovod as h
        from airflowdsl.air import ScalingConfig
        print("IMPORTED:", sorted(m for m in ("torch", "horovod") if sys.modules.get(m)))
        try:
            h.HorovodTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=2))
        except ImportError as exc:
            print("ERROR:", exc)
        else:
            print("NO ERROR")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "IMPORTED: []" in lines  # importing the module pulls in no framework
    line = lines[-1]
    assert line.startswith("ERROR: HorovodTrainer needs Horovod, which is not installed")
    _assert_install_hint(line)


def test_missing_horovod_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "horovod", None)
    with pytest.raises(ImportError) as info:
        hvd_mod.HorovodTrainer(_loop)
    assert "not installed" in str(info.value)
    _assert_install_hint(str(info.value))


@needs_horovod
def test_horovod_built_for_another_torch_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "9.9.9" if name == "torch" else real(name))
    with pytest.raises(ImportError) as info:
        require_horovod()
    assert "built for torch" in str(info.value) and "torch 9.9.9 is installed" in str(info.value)
    _assert_install_hint(str(info.value))


def test_config_validates() -> None:
    cfg = HorovodConfig(nics={"eth0"}, timeout_s=5)  # type: ignore[arg-type]
    assert cfg.nics == frozenset({"eth0"})
    for bad in ({"timeout_s": 0}, {"verbose": -1}, {"nicks": ["eth0"]}):
        with pytest.raises(ValueError):
            HorovodConfig(**bad)


@needs_horovod
def test_trainer_checks_its_config_and_takes_tune_overrides() -> None:
    with pytest.raises(TypeError, match="HorovodConfig"):
        hvd_mod.HorovodTrainer(_loop, horovod_config={"timeout_s": 5})  # type: ignore[arg-type]
    trainer = hvd_mod.HorovodTrainer(_loop, train_loop_config={"lr": 0.1, "epochs": 2},
                                     horovod_config=HorovodConfig(timeout_s=5))
    copy = trainer.with_overrides({"train_loop_config": {"lr": 0.5}})
    assert isinstance(copy, hvd_mod.HorovodTrainer)
    assert copy.train_loop_config == {"lr": 0.5, "epochs": 2}
    backend = copy.make_backend()
    assert isinstance(backend, hvd_mod.HorovodBackend) and backend.config.timeout_s == 5


def _infos(layout: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Worker infos as the WorkerGroup ranks them: node by node, local ranks within."""
    infos = []
    for node, count in layout:
        for local in range(count):
            infos.append({"node_id": node, "local_rank": local, "ip": "127.0.0.1"})
    return infos


@needs_horovod
def test_plan_ranks_local_and_cross_ranks_by_node() -> None:
    plan = hvd_mod.rendezvous_plan(_infos([("nodeA", 2), ("nodeB", 2)]))
    got = [(s.hostname, s.rank, s.local_rank, s.local_size, s.cross_rank, s.cross_size)
           for s in plan]
    assert got == [("nodeA", 0, 0, 2, 0, 2), ("nodeA", 1, 1, 2, 0, 2),
                   ("nodeB", 2, 0, 2, 1, 2), ("nodeB", 3, 1, 2, 1, 2)]
    env = hvd_mod.slot_env(plan[3])
    assert env["HOROVOD_HOSTNAME"] == "nodeB"  # exactly the plan's host string
    assert (env["HOROVOD_RANK"], env["HOROVOD_SIZE"], env["HOROVOD_LOCAL_RANK"],
            env["HOROVOD_CROSS_RANK"]) == ("3", "4", "1", "1")


@needs_horovod
def test_plan_refuses_a_group_not_ranked_node_by_node() -> None:
    infos = _infos([("nodeA", 1), ("nodeB", 1), ("nodeA", 1)])
    infos[2]["local_rank"] = 1
    with pytest.raises(RuntimeError, match="does not match worker rank"):
        hvd_mod.rendezvous_plan(infos)


def test_gloo_iface_prefers_nics_then_the_node_ip() -> None:
    import psutil

    lo = next(name for name, addrs in psutil.net_if_addrs().items()
              if any(a.address == "127.0.0.1" for a in addrs))
    assert gloo_iface(None, "127.0.0.1") == lo
    assert gloo_iface(None, "203.0.113.254") is None  # not ours: Gloo resolves the hostname
    assert gloo_iface(["no-such-nic0", lo], "203.0.113.254") == lo
    with pytest.raises(ValueError, match="no-such-nic0"):
        gloo_iface(["no-such-nic0"], "127.0.0.1")


class _FakeGroup:
    """Just enough of a WorkerGroup: infos, and execute/execute_each recorded, not run."""

    def __init__(self, n: int) -> None:
        self.infos = _infos([("node0", n)])
        self.calls: list[tuple[str, Any]] = []

    def __len__(self) -> int:
        return len(self.infos)

    def execute_each(self, fn: Any, args: list[tuple[Any, ...]]) -> list[Any]:
        self.calls.append((fn.__name__, args))
        return ["lo"] * len(args)

    def execute(self, fn: Any) -> list[Any]:
        self.calls.append((fn.__name__, None))
        return [None] * len(self.infos)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@needs_horovod
@pytest.mark.parametrize("end", ["on_shutdown", "on_abort"])
def test_backend_runs_the_rendezvous_server_for_one_attempt(end: str) -> None:
    from airflowdsl.air import ScalingConfig

    backend = hvd_mod.HorovodBackend(HorovodConfig(timeout_s=7, verbose=0))
    group = _FakeGroup(2)
    backend.on_start(group, ScalingConfig(num_workers=2))  # type: ignore[arg-type]
    name, args = group.calls[0]
    assert name == "_set_worker_env"
    envs = [a[0] for a in args]
    assert [e["HOROVOD_RANK"] for e in envs] == ["0", "1"]
    assert {e["HOROVOD_HOSTNAME"] for e in envs} == {"node0"}
    assert all(e["HOROVOD_CONTROLLER"] == e["HOROVOD_CPU_OPERATIONS"] == "gloo" for e in envs)
    assert envs[0]["HOROVOD_GLOO_TIMEOUT_SECONDS"] == "7"
    port = int(envs[0]["HOROVOD_GLOO_RENDEZVOUS_PORT"])
    assert _listening(port)
    getattr(backend, end)(group)
    assert not _listening(port)
    assert backend.server is None
    assert (end == "on_shutdown") == (group.calls[-1][0] == "_shutdown_horovod")
    getattr(backend, end)(group)  # idempotent


def test_shutdown_on_a_worker_that_never_imported_horovod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "horovod.torch", raising=False)
    hvd_mod._shutdown_horovod()  # no import, no error
    assert "horovod.torch" not in sys.modules
