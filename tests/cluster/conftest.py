"""One real multi-node Ray for every test in this folder (issue 12).

A ``ray.cluster_utils.Cluster`` on this machine: a head with no CPUs (custom resource
``head``) and two 1-CPU worker nodes tagged ``node_a`` and ``node_b``, plus a moto S3
server as the artifact store. The main suite's ``tests/conftest.py`` starts one local
Ray per pytest process, so this folder runs in a pytest process of its own:
``scripts/test.sh`` runs it after the main suite with ``AIRFLOWDSL_CLUSTER_TESTS=1``
(without that variable ``tests/conftest.py`` leaves the folder out). The cluster is
started once (about 10 s) and always shut down; every wait in the scenarios is bounded.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))  # tests/moto_s3.py

os.environ.setdefault("AIRFLOWDSL_PENDING_TIMEOUT", "90")  # a bounded wait, with a message
os.environ.setdefault("AIRFLOWDSL_SETUP_TIMEOUT", "120")


@dataclass
class MultiNode:
    cluster: Any  # ray.cluster_utils.Cluster
    nodes: dict[str, Any]  # "head" / "node_a" / "node_b" -> ray._private.node.Node
    s3: Any  # moto_s3.S3Server
    tmpdir: str  # the head's TMPDIR; node_a's and node_b's are its node_a/ and node_b/

    def node_id(self, name: str) -> str:
        return str(self.nodes[name].node_id)


@pytest.fixture(scope="session")
def multinode() -> Iterator[MultiNode]:
    import ray
    from moto_s3 import moto_s3
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.skip("the multi-node tests need a pytest process of their own "
                    "(AIRFLOWDSL_CLUSTER_TESTS=1 pytest tests/cluster)")
    # the AWS variables and TMPDIR must be set before the nodes start: workers inherit them.
    # Each worker node has a TMPDIR of its own, as separate machines have: what a process
    # spools or copies into its temp folder is not where the driver or another node looks
    tmpdir = tempfile.mkdtemp(prefix="afcl-")
    saved_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = tmpdir
    with moto_s3() as s3:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "resources": {"head": 1}, "include_dashboard": False})
        try:
            nodes = {"head": cluster.head_node}
            for name in ("node_a", "node_b"):
                os.environ["TMPDIR"] = os.path.join(tmpdir, name)
                os.mkdir(os.environ["TMPDIR"])
                nodes[name] = cluster.add_node(num_cpus=1, resources={name: 1})
            os.environ["TMPDIR"] = tmpdir
            cluster.wait_for_nodes(timeout=60)
            ray.init(address=cluster.address, include_dashboard=False, runtime_env={
                "env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}})
            from ray.data import DataContext

            DataContext.get_current().enable_progress_bars = False
            yield MultiNode(cluster=cluster, nodes=nodes, s3=s3, tmpdir=tmpdir)
        finally:
            ray.shutdown()
            cluster.shutdown()
            if saved_tmp is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved_tmp
            shutil.rmtree(tmpdir, ignore_errors=True)
